"""Export an mmdet detector or an mmpretrain classifier whole to ONNX, then run the
file in ONNX Runtime and compare it with the PyTorch model.

    python tools/deployment/pytorch2onnx.py CONFIG [--checkpoint CKPT] [--out FILE]
        [--images IMAGE ...] [--coco] [--backbone-only] [--cfg-options k=v ...]

**A detector** (Faster, Mask or Cascade R-CNN, RetinaNet, FCOS, RTMDet; any other family is
refused by name) is exported whole (mmdas.deployment.detector): the image in, ``dets`` (x1,
y1, x2, y2, score in the image's pixels) and ``labels`` out (and ``masks``, each detection's mask
probabilities, for Mask R-CNN, pasted into the image by the runtime), every test-time setting
from the config's ``test_cfg``, standard ONNX operators only (``DeformConv``, ``RoiAlign``,
``NonMaxSuppression``...), free height and width. The preprocessing (keep-ratio resize,
normalisation, padding) is NumPy (``preprocess`` in mmdas.deployment.onnx_infer, the torch-free
runtime), its settings written into the file's metadata. The export writes that runtime beside
the file as ``onnx_infer.py``: it runs the file with onnxruntime, NumPy and OpenCV alone, and
the two files are all a deployment machine needs.
The file is checked against mmdet's own ``inference_detector`` (the test pipeline and
``model.test_step``) on --images (default: up to 3 images of the config's test set), each also
at 3/4 of its size (mmdas.deployment.parity): the candidates before any top-k or NMS (the dense
heads' outputs; the box head's outputs for the RoIs both share) within --rtol of their scale
plus --atol; proposals and detections matched one to one, within --max-box-diff pixels and
--max-score-diff, where only a tie may leave one without a counterpart (a score within
--max-score-diff of a threshold or cut, an overlap within --tie-iou of the NMS threshold, or what
such a tie suppressed or let through), each such tie named; masks compared as probabilities
(--mask-prob-diff), pasted pixels differing only at the threshold. The tool exits 1 on anything
else. --coco also scores both over the config's whole test set with pycocotools (bbox AP; segm
AP too for Mask R-CNN) and fails on a gap above 0.005.
--backbone-only exports the backbone and neck instead, as below.

**A classifier, or a detector's backbone and neck** (--backbone-only):

    python tools/deployment/pytorch2onnx.py CONFIG [--checkpoint CKPT] [--shape H W]
        [--out FILE] [--dynamic-batch] [--dynamic-shape] [--exporter {dynamo,torchscript}]
        [--opset N] [--rtol 1e-4] [--atol 1e-5]

The DAS gate's deformable conv is written as the standard ONNX DeformConv (opset >= 19), so the
file runs in a plain ONNX Runtime. Every output must satisfy
``max |onnx - torch| <= rtol * max |torch| + atol`` (default 1e-4 of the output's scale + 1e-5);
otherwise the tool exits with status 1. With --dynamic-batch / --dynamic-shape the file is also
checked at batch 2 and at other sizes (32 px included: a 1x1 map at stride 32).
The graph starts after the data preprocessor: feed (pixel - mean) / std in NCHW (printed below
and stored in the file's metadata).
"""
import argparse
import contextlib
import glob
import io
import os
import os.path as osp
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
from mmengine.config import Config, DictAction

import mmdas
from mmdas.apis import init_model
from mmdas.deployment import (ATOL, EXPORTERS, RTOL, build_export_target, compare_outputs,
                              export_onnx, nonstandard_operators, onnxruntime_outputs,
                              operator_types)
from mmdas.deployment.detector import (detector_graph, export_detector, mmdet_detections,
                                       onnx_detections)
from mmdas.deployment.parity import Tolerance, compare_with_mmdet, probed_session


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument(
        '--checkpoint',
        help='weights to export (default: the config\'s '
        'initialisation, random where it downloads: for trying the export only)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input size (default 224 224 for classifiers, 800 1344 detectors)')
    parser.add_argument('--out', help='ONNX file (default: work_dirs/onnx/<config name>.onnx)')
    parser.add_argument('--dynamic-batch', action='store_true', help='free batch size')
    parser.add_argument('--dynamic-shape', action='store_true', help='free height and width')
    parser.add_argument(
        '--exporter',
        choices=EXPORTERS,
        default='dynamo',
        help="torch's exporter: 'dynamo' (its default) or 'torchscript'")
    parser.add_argument('--opset', type=int, help='ONNX opset (>= 19; default: torch\'s, 20)')
    parser.add_argument(
        '--rtol',
        type=float,
        help=f'of each output\'s scale (default {RTOL:g}; a whole detector\'s candidates '
        f'{Tolerance.rtol:g})')
    parser.add_argument(
        '--atol', type=float, help=f'(default {ATOL:g}; whole detector '
        f'{Tolerance.atol:g})')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    whole = parser.add_argument_group('whole detector')
    whole.add_argument(
        '--backbone-only',
        action='store_true',
        help="a detector's backbone and neck only (the classifier path's options apply)")
    whole.add_argument('--images', nargs='+', help='images the file is checked on')
    whole.add_argument(
        '--coco',
        action='store_true',
        help="bbox AP of PyTorch and ONNX Runtime over the config's test set (pycocotools)")
    tie = Tolerance()
    whole.add_argument('--max-box-diff', type=float, default=tie.box, help='pixels')
    whole.add_argument('--max-score-diff', type=float, default=tie.score)
    whole.add_argument(
        '--tie-iou',
        type=float,
        default=tie.iou,
        help='an overlap this close to the NMS threshold is a tie')
    whole.add_argument(
        '--mask-prob-diff', type=float, default=tie.mask, help='Mask R-CNN probabilities')
    return parser.parse_args(argv)


def check_shapes(shape: Tuple[int, int], dynamic_batch: bool,
                 dynamic_shape: bool) -> List[Tuple[int, int, int]]:
    """(batch, h, w) the file is checked at: the export shape, then the free dimensions."""
    shapes = [(1, *shape)]
    if dynamic_batch:
        shapes.append((2, *shape))
    if dynamic_shape:
        shapes += [(1, shape[0] // 2 + 8, shape[1] // 2), (1, 32, 32)]
    return shapes


def say_weights(weights: str, skipped: List[str]) -> None:
    """Where the exported weights come from, and which Pretrained entries were not loaded."""
    print(f'weights: {weights}')
    if skipped:
        print('  Pretrained entries skipped (nothing is downloaded; those parts keep their own '
              'init): ' + ', '.join(skipped))


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('default_scope', 'mmdet') == 'mmdet' and not args.backbone_only:
        return export_whole_detector(args, cfg)
    return export_tensor_model(args, cfg)


def export_tensor_model(args, cfg: Config) -> int:
    """A classifier whole, or a detector's backbone and neck, checked output by output."""
    target = build_export_target(cfg, args.checkpoint)
    say_weights(target.weights, target.skipped_pretrained)
    shape = tuple(args.shape or target.default_shape)
    out = args.out or osp.join('work_dirs', 'onnx',
                               osp.splitext(osp.basename(args.config))[0] + '.onnx')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    torch.manual_seed(0)
    example = torch.randn(1, 3, *shape)
    export_onnx(
        target.module,
        example,
        out,
        args.exporter,
        args.dynamic_batch,
        args.dynamic_shape,
        args.opset,
        target.output_names,
        metadata=dict(target.preprocessing, exported_by='mmdas ' + mmdas.__version__))
    ops = operator_types(out)
    print(f'wrote {out}: {len(ops)} nodes, {sum(op == "DeformConv" for _, op in ops)} '
          f'DeformConv ({args.exporter} exporter)')
    print('input: ' + ', '.join(f'{k} {v}' for k, v in target.preprocessing.items()))
    shapes = check_shapes(shape, args.dynamic_batch, args.dynamic_shape)
    rtol = RTOL if args.rtol is None else args.rtol
    atol = ATOL if args.atol is None else args.atol
    failures = check_tensor_file(target.module, out, target.output_names, shapes, rtol, atol)
    if failures:
        print('ONNX export check FAILED:\n  ' + '\n  '.join(failures), file=sys.stderr)
        return 1
    print(f'ONNX Runtime matches PyTorch (rtol {rtol:g}, atol {atol:g})')
    return 0


def check_tensor_file(module: torch.nn.Module, path: str, names: List[str],
                      shapes: List[Tuple[int, int, int]], rtol: float, atol: float) -> List[str]:
    """The file at ``path`` against ``module`` on random inputs of each ``(batch, h, w)``,
    output by output, printed; returns the failures."""
    failures = [f'operators outside the standard ONNX domain: {nonstandard_operators(path)}'
                ] if nonstandard_operators(path) else []
    for batch, h, w in shapes:
        inputs = torch.randn(batch, 3, h, w)
        with torch.no_grad():
            expected = module(inputs)
        expected = expected if isinstance(expected, (tuple, list)) else (expected, )
        try:
            got = onnxruntime_outputs(path, inputs)
        except Exception as err:  # ONNX Runtime refusing the file is a failure, named
            failures.append(f'ONNX Runtime could not run it at {batch}x3x{h}x{w}: {err}')
            continue
        for check in compare_outputs(expected, got, names, rtol, atol):
            verdict = 'ok' if check.ok else 'FAIL'
            print(f'  {batch}x3x{h}x{w} {check.name} {check.shape}: max |onnx - torch| = '
                  f'{check.max_abs_diff:.2e} (allowed {check.allowed:.2e}) {verdict}')
            if not check.ok:
                failures.append(f'{check.name} at {batch}x3x{h}x{w} differs by '
                                f'{check.max_abs_diff:.2e} > {check.allowed:.2e}')
    return failures


def test_annotations(cfg: Config) -> str:
    """The path of the config's test-set annotation file."""
    dataset = cfg.test_dataloader.dataset
    return osp.join(dataset.get('data_root', ''), dataset.ann_file)


def test_set(cfg: Config):
    """The config's COCO-format test set: its annotations and a function from image id to path."""
    from pycocotools.coco import COCO
    dataset = cfg.test_dataloader.dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(test_annotations(cfg))
    folder = osp.join(dataset.data_root, dataset.get('data_prefix', {}).get('img', ''))
    return coco, lambda image_id: osp.join(folder, coco.loadImgs(image_id)[0]['file_name'])


def check_images(cfg: Config, given: Optional[List[str]], count: int = 3) -> List[str]:
    """The images the file is checked on: ``given``; else up to ``count`` images of the
    config's test set, spread over it; else, where that set is not on disk, ``count`` synthetic
    shapes images written to a temporary folder (said on the console)."""
    if given:
        return given
    annotations = test_annotations(cfg)
    if not osp.isfile(annotations):
        from mmdas.datasets import make_shapes_coco
        folder = tempfile.mkdtemp(prefix='mmdas_check_images_')
        make_shapes_coco(folder, num_train=0, num_val=0, num_test=count)
        images = sorted(glob.glob(osp.join(folder, 'test', '*.jpg')))
        print(f"the config's test set is not on disk ({annotations}): checking on {count} "
              f'generated shapes images in {folder} (pass --images to check on your own; a model '
              'that finds nothing in them fails the check)')
        return images
    coco, path = test_set(cfg)
    ids = sorted(coco.getImgIds())
    return [path(ids[i * len(ids) // count]) for i in range(min(count, len(ids)))]


def coco_results(detections: Tuple[np.ndarray, ...], image_id: int,
                 category_ids: List[int]) -> List[dict]:
    """COCO-format results of one image's detections (with RLE masks when there are masks)."""
    from pycocotools import mask as mask_util
    dets, labels = detections[:2]
    results = []
    for i, ((x1, y1, x2, y2, score), label) in enumerate(zip(dets, labels)):
        result = dict(
            image_id=image_id,
            category_id=category_ids[int(label)],
            bbox=[float(x1), float(y1), float(x2 - x1),
                  float(y2 - y1)],
            score=float(score))
        if len(detections) > 2:
            rle = mask_util.encode(np.asfortranarray(detections[2][i].astype(np.uint8)))
            result['segmentation'] = dict(rle, counts=rle['counts'].decode())
        results.append(result)
    return results


def coco_evaluate(truth, results: List[dict], kind: str) -> Tuple[float, float]:
    """pycocotools' AP and AP50 of ``results`` (COCO format) against ``truth``, ``kind`` bbox
    or segm (no results score 0)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    evaluation = COCOeval(truth, truth.loadRes(results) if results else COCO(), kind)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0]), float(evaluation.stats[1])


def coco_ap(cfg: Config, model, session) -> Dict[str, Tuple[float, float]]:
    """AP and AP50 of PyTorch (mmdet) and of the ONNX file over the config's test set, by
    ``'<pytorch|onnx> <bbox|segm>'`` (segm for a detector with masks)."""
    truth, path = test_set(cfg)
    by_name = {c['name']: c['id'] for c in truth.loadCats(truth.getCatIds())}
    category_ids = [by_name[name] for name in model.dataset_meta['classes']]
    results = dict(pytorch=[], onnx=[])
    for image_id in sorted(truth.getImgIds()):
        image = cv2.imread(path(image_id))
        results['pytorch'] += coco_results(mmdet_detections(model, image), image_id, category_ids)
        results['onnx'] += coco_results(onnx_detections(session, image), image_id, category_ids)
    kinds = ['bbox', 'segm'] if any('segmentation' in r for r in results['pytorch']) else ['bbox']
    return {
        f'{name} {kind}': coco_evaluate(truth, found, kind)
        for name, found in results.items()
        for kind in kinds
    }


def check_detector_file(model, path: str, images: List[str], tol: Tolerance) -> List[str]:
    """The file at ``path`` against mmdet's ``model`` on ``images``, each also at 3/4 of its
    size (mmdas.deployment.parity), printed; returns the failures."""
    session = probed_session(path)
    print(f'against mmdet (inference_detector): candidates within rtol {tol.rtol:g} of their '
          f'scale + atol {tol.atol:g}; detections within {tol.box:g} px and score {tol.score:g}, '
          f'ties allowed only at a threshold, a cut or the NMS IoU (+- {tol.iou:g})')
    failures, compared = [], 0
    for image_path in images:
        image = cv2.imread(image_path)
        if image is None:
            raise SystemExit(f'cannot read the image {image_path!r}')
        smaller = cv2.resize(image, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
        for label, picture in ((image_path, image), (f'{image_path} at 3/4', smaller)):
            report = compare_with_mmdet(model, session, picture, tol)
            print(f"  {label}: {'ok' if report.ok else 'FAIL'}")
            for line in report.lines + [f'tie: {tie}' for tie in report.ties]:
                print(f'    {line}')
            failures += [f'{label}: {failure}' for failure in report.failures]
            compared += report.matched
    if compared == 0:
        failures.append('0 detections compared: mmdet found nothing on the check images, so '
                        'nothing was checked (an untrained model, or images unlike its data: '
                        'pass --images with pictures it detects objects in)')
    return failures


def export_whole_detector(args, cfg: Config) -> int:
    """The whole detector, checked against mmdet's own detections."""
    import onnxruntime
    model = init_model(cfg, args.checkpoint)
    detector_graph(model)  # an unsupported family is refused here, by name
    say_weights(model.weights, model.skipped_pretrained)
    if args.coco and not osp.isfile(test_annotations(cfg)):
        raise SystemExit(f'--coco: no annotation file at {test_annotations(cfg)} (the config\'s '
                         'test set); put the data set there or leave --coco out')
    images = check_images(cfg, args.images)
    first = cv2.imread(images[0])
    if first is None:
        raise SystemExit(f'cannot read the image {images[0]!r}')
    out = args.out or osp.join('work_dirs', 'onnx',
                               osp.splitext(osp.basename(args.config))[0] + '.onnx')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    export_detector(
        model,
        out,
        first,
        opset=args.opset or 19,
        metadata=dict(exported_by='mmdas ' + mmdas.__version__))
    ops = [op for _, op in operator_types(out)]
    print(f'wrote {out}: {len(ops)} nodes (' +
          ', '.join(f'{ops.count(op)} {op}'
                    for op in ('DeformConv', 'RoiAlign', 'NonMaxSuppression')) + ')')
    failures = [f'operators outside the standard ONNX domain: {nonstandard_operators(out)}'
                ] if nonstandard_operators(out) else []
    given = dict(rtol=args.rtol, atol=args.atol)
    tol = Tolerance(
        box=args.max_box_diff,
        score=args.max_score_diff,
        iou=args.tie_iou,
        mask=args.mask_prob_diff,
        **{
            k: v
            for k, v in given.items() if v is not None
        })
    failures += check_detector_file(model, out, images, tol)
    session = onnxruntime.InferenceSession(out, providers=['CPUExecutionProvider'])
    if args.coco:
        scores = coco_ap(cfg, model, session)
        for name, (ap, ap50) in scores.items():
            side, kind = name.split()
            print(f'  COCO {kind} AP over the test set, {side}: {ap:.4f} (AP50 {ap50:.4f})')
            if side == 'onnx' and abs(scores[f'pytorch {kind}'][0] - ap) > 0.005:
                failures.append(f'{kind} AP differs by more than 0.005: {scores}')
    if failures:
        print('ONNX export check FAILED:\n  ' + '\n  '.join(failures), file=sys.stderr)
        return 1
    print('ONNX Runtime matches mmdet')
    return 0


if __name__ == '__main__':
    sys.exit(main())
