"""Run a whole-detector ONNX file (from pytorch2onnx.py) on images with ONNX Runtime alone.

    python tools/deployment/onnx_infer.py FILE IMAGE [IMAGE ...] [--out DIR] [--score-thr 0.3]

Needs only onnxruntime, NumPy and OpenCV: no torch, mmcv or mmdet. The preprocessing (keep-ratio
resize, normalisation, padding) is read from the file's metadata and done by
mmdas/deployment/detection_io.py, loaded by its path (the mmdas package is not imported).
Prints each image's detections (x1, y1, x2, y2 in the image's pixels, score, class) and, with
--out, draws those at or above --score-thr.
"""
import argparse
import ast
import importlib.util
import os
import os.path as osp
import sys

import cv2
import onnxruntime


def load_detection_io():
    """mmdas/deployment/detection_io.py, loaded by its path: importing the mmdas package would
    import torch, which this tool does without."""
    package = importlib.util.find_spec('mmdas')  # finds the package without running it
    if package is None:
        raise SystemExit('mmdas is not installed or on PYTHONPATH: detection_io.py comes with it')
    path = osp.join(package.submodule_search_locations[0], 'deployment', 'detection_io.py')
    spec = importlib.util.spec_from_file_location('detection_io', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('file', help='a whole-detector ONNX file')
    parser.add_argument('images', nargs='+')
    parser.add_argument('--out', help='folder for the drawn images')
    parser.add_argument('--score-thr', type=float, default=0.3, help='drawn and printed from')
    args = parser.parse_args()
    io = load_detection_io()
    session = onnxruntime.InferenceSession(args.file, providers=['CPUExecutionProvider'])
    meta = session.get_modelmeta().custom_metadata_map
    if 'scale' not in meta:
        print(
            f'{args.file} is not a whole-detector export (no preprocessing in its metadata); '
            'export one with tools/deployment/pytorch2onnx.py CONFIG --checkpoint CKPT',
            file=sys.stderr)
        return 1
    classes = ast.literal_eval(meta.get('classes', '[]'))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    failed = 0
    for path in args.images:
        image = cv2.imread(path)
        if image is None:
            print(f'{path}: cannot read this image', file=sys.stderr)
            failed += 1
            continue
        inputs, info = io.preprocess(image, meta)
        dets, labels = session.run(None, {'image': inputs, 'image_info': info})
        shown = dets[:, 4] >= args.score_thr
        print(f'{path}: {int(shown.sum())} detection(s) with score >= {args.score_thr} '
              f'({len(dets)} in all)')
        for (x1, y1, x2, y2, score), label in zip(dets[shown], labels[shown]):
            name = classes[label] if label < len(classes) else str(label)
            print(f'  {name:<12} {score:.3f}  [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]')
        if args.out:
            out = osp.join(args.out, osp.basename(path))
            cv2.imwrite(out, io.draw(image, dets, labels, classes, args.score_thr))
    if args.out:
        print(f'drawn to {args.out}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
