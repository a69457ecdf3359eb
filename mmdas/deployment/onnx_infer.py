"""Run a whole-detector ONNX file (from pytorch2onnx.py) on images with ONNX Runtime alone.

    python onnx_infer.py FILE IMAGE [IMAGE ...] [--out DIR] [--score-thr 0.3]

The exporter writes this module beside the ``.onnx`` file as ``onnx_infer.py``: the two files,
onnxruntime, NumPy and OpenCV are what a deployment machine needs (no torch, OpenMMLab or
mmdas; this module imports none of them). Any exported family runs (Faster, Mask and Cascade
R-CNN, RetinaNet, FCOS, RTMDet). The preprocessing (keep-ratio resize, padding, normalisation)
is read from the file's metadata and done by :func:`preprocess` below, and a Mask R-CNN's masks are
pasted into the image by :func:`paste_masks`: the one definition of each, which the exporter's
check (:mod:`mmdas.deployment.parity`) imports. In a checkout,
``python -m mmdas.deployment.onnx_infer`` runs the same.
Prints each image's detections (x1, y1, x2, y2 in the image's pixels, score, class, and the
mask's pixel count) and, with --out, draws those at or above --score-thr.

mmdet's ``Resize(keep_ratio=True)`` is ``mmcv.imrescale``: the factor that fits the image in
``scale`` (long edge <= max(scale), short edge <= min(scale)), the new size rounded half up,
bilinear (OpenCV); its ``scale_factor`` is the new width / height over the old. The data
preprocessor then converts BGR to RGB, normalises and pads (bottom, right) to a multiple of
``size_divisor`` with ``pad_value``.

mmdet's mask pasting (``FCNMaskHead``'s ``_do_paste_mask`` on the CPU) samples each
detection's ``M x M`` probabilities at the image's pixel centres inside its box (one pixel of
margin) with ``grid_sample`` (bilinear, ``align_corners=False``, zeros outside) and keeps the
pixels at or above ``mask_thr_binary``; bilinear sampling is separable, so here it is one matrix
product per detection (rows, then columns).
"""
import argparse
import ast
import os
import os.path as osp
import sys
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np


def preprocess(image_bgr: np.ndarray, meta: Dict[str, str]) -> Tuple[np.ndarray, np.ndarray]:
    """``(image, image_info)`` for the graph from an ``H x W x 3`` uint8 BGR image."""
    scale = ast.literal_eval(meta['scale'])
    h, w = image_bgr.shape[:2]
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    new_w, new_h = int(w * factor + 0.5), int(h * factor + 0.5)
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if 'pad_size' in meta:  # the test pipeline's Pad (RTMDet): to (w, h), bottom and right
        pad_w, pad_h = ast.literal_eval(meta['pad_size'])
        canvas = np.empty((max(pad_h, new_h), max(pad_w, new_w), 3), resized.dtype)
        canvas[...] = ast.literal_eval(meta['pad_pixel'])  # one value, or one per channel
        canvas[:new_h, :new_w] = resized
        resized = canvas
    if meta['bgr_to_rgb'] == 'True':
        resized = resized[..., ::-1]
    mean = np.array(ast.literal_eval(meta['mean']), np.float32)
    std = np.array(ast.literal_eval(meta['std']), np.float32)
    normalised = (resized.astype(np.float32) - mean) / std
    divisor = int(meta['size_divisor'])
    pad_h, pad_w = -normalised.shape[0] % divisor, -normalised.shape[1] % divisor
    padded = np.pad(
        normalised, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=float(meta['pad_value']))
    image = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], np.float32)
    # the image's shape as mmdet's test_step sees it (after Pad, where boxes are clipped) and
    # the resize factors
    info = np.array([*resized.shape[:2], new_w / w, new_h / h], np.float32)
    return image, info


def _sampling_matrix(start: int, stop: int, low: float, high: float, cells: int) -> np.ndarray:
    """``(stop - start, cells)``: the bilinear weights (zeros outside the cells) with which
    ``grid_sample(align_corners=False)`` samples ``cells`` values spread over ``[low, high]`` at
    the pixel centres ``start + 0.5 ... stop - 0.5``."""
    with np.errstate(divide='ignore', invalid='ignore'):
        grid = (np.arange(start, stop, dtype=np.float32) + np.float32(0.5) - np.float32(low)) / \
            (np.float32(high) - np.float32(low)) * 2 - 1
    grid[np.isinf(grid)] = 0  # a box of zero size, as mmdet sets it
    position = ((grid + 1) * cells - 1) / 2
    left = np.floor(position)
    weight = position - left
    matrix = np.zeros((len(grid), cells), np.float32)
    for index, w in ((left, 1 - weight), (left + 1, weight)):
        inside = (index >= 0) & (index < cells)
        matrix[np.flatnonzero(inside), index[inside].astype(int)] += w[inside]
    return matrix


def paste_mask(mask: np.ndarray, box: np.ndarray, height: int,
               width: int) -> Tuple[Tuple[slice, slice], np.ndarray]:
    """One ``M x M`` mask of probabilities pasted into its box ``(x1, y1, x2, y2)`` (image
    pixels) of an image of that size: the window of the image it covers (the box and one pixel
    of margin) and the probabilities there."""
    x1, y1, x2, y2 = box[:4]
    x0, y0 = max(int(np.floor(x1)) - 1, 0), max(int(np.floor(y1)) - 1, 0)
    x3, y3 = min(int(np.ceil(x2)) + 1, width), min(int(np.ceil(y2)) + 1, height)
    rows = _sampling_matrix(y0, y3, y1, y2, mask.shape[0])
    columns = _sampling_matrix(x0, x3, x1, x2, mask.shape[1])
    return (slice(y0, y3), slice(x0, x3)), rows @ mask.astype(np.float32) @ columns.T


def paste_masks(masks: np.ndarray, boxes: np.ndarray, height: int, width: int,
                threshold: float) -> np.ndarray:
    """``(N, height, width)`` bool: each mask pasted (:func:`paste_mask`), kept from
    ``threshold``."""
    out = np.zeros((len(masks), height, width), bool)
    for i, (mask, box) in enumerate(zip(masks, boxes)):
        window, probabilities = paste_mask(mask, box, height, width)
        out[i][window] = probabilities >= threshold
    return out


def detect(session, image_bgr: np.ndarray) -> Tuple[np.ndarray, ...]:
    """The file's detections of ``image_bgr``: ``(dets (N, 5), labels (N,))`` in the image's
    pixels, with ``masks (N, H, W)`` bool for a Mask R-CNN."""
    meta = session.get_modelmeta().custom_metadata_map
    image, info = preprocess(image_bgr, meta)
    names = [
        name for name in ('dets', 'labels', 'masks')
        if name in {o.name
                    for o in session.get_outputs()}
    ]
    outputs = session.run(names, {'image': image, 'image_info': info})
    if len(outputs) == 2:
        return tuple(outputs)
    dets, labels, masks = outputs
    h, w = image_bgr.shape[:2]
    return dets, labels, paste_masks(masks, dets, h, w, float(meta['mask_thr_binary']))


def draw(image_bgr: np.ndarray,
         dets: np.ndarray,
         labels: np.ndarray,
         classes: Sequence[str],
         score_thr: float = 0.3,
         masks: Optional[np.ndarray] = None) -> np.ndarray:
    """The image with the detections scoring at least ``score_thr`` drawn on a copy (their
    masks, when given, blended in their class's colour)."""
    out = image_bgr.copy()
    for i, ((x1, y1, x2, y2, score), label) in enumerate(zip(dets, labels)):
        if score < score_thr:
            continue
        colour = tuple(int(c) for c in np.random.default_rng(int(label)).integers(60, 255, 3))
        if masks is not None:
            out[masks[i]] = (0.5 * out[masks[i]] + 0.5 * np.array(colour)).astype(np.uint8)
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), colour, 2)
        name = classes[label] if label < len(classes) else str(label)
        cv2.putText(out, f'{name} {score:.2f}', (int(x1), max(int(y1) - 3, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('file', help='a whole-detector ONNX file')
    parser.add_argument('images', nargs='+')
    parser.add_argument('--out', help='folder for the drawn images')
    parser.add_argument('--score-thr', type=float, default=0.3, help='drawn and printed from')
    args = parser.parse_args()
    import onnxruntime
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
        dets, labels, *masks = detect(session, image)
        shown = dets[:, 4] >= args.score_thr
        print(f'{path}: {int(shown.sum())} detection(s) with score >= {args.score_thr} '
              f'({len(dets)} in all)')
        for i in np.flatnonzero(shown):
            x1, y1, x2, y2, score = dets[i]
            name = classes[labels[i]] if labels[i] < len(classes) else str(labels[i])
            area = f'  mask {int(masks[0][i].sum())} px' if masks else ''
            print(f'  {name:<12} {score:.3f}  [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]{area}')
        if args.out:
            out = osp.join(args.out, osp.basename(path))
            cv2.imwrite(out, draw(image, dets, labels, classes, args.score_thr, *masks))
    if args.out:
        print(f'drawn to {args.out}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
