"""Export an mmpretrain classifier (whole) or an mmdet detector (backbone and neck) to ONNX,
then run the file in ONNX Runtime on the same input and compare it with PyTorch.

    python tools/deployment/pytorch2onnx.py CONFIG [--checkpoint CKPT] [--shape H W]
        [--out FILE] [--dynamic-batch] [--dynamic-shape] [--exporter {dynamo,torchscript}]
        [--opset N] [--rtol 1e-4] [--atol 1e-5]

The DAS gate's deformable conv is written as the standard ONNX DeformConv (opset >= 19), so the
file runs in a plain ONNX Runtime. Every output must satisfy
``max |onnx - torch| <= rtol * max |torch| + atol`` (default 1e-4 of the output's scale + 1e-5);
otherwise the tool exits with status 1. With --dynamic-batch / --dynamic-shape the file is also
checked at batch 2 and at other sizes (32 px included: a 1x1 map at stride 32).
The graph starts after the data preprocessor: feed (pixel - mean) / std in NCHW (printed below
and stored in the file's metadata). Whole Faster R-CNN export needs mmdeploy (README).
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Tuple

import torch
from mmengine.config import Config, DictAction

import mmdas  # noqa: F401
from mmdas.deployment import (ATOL, EXPORTERS, RTOL, build_export_target, compare_outputs,
                              export_onnx, nonstandard_operators, onnxruntime_outputs,
                              operator_types)


def parse_args() -> argparse.Namespace:
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
    parser.add_argument('--rtol', type=float, default=RTOL)
    parser.add_argument('--atol', type=float, default=ATOL)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def check_shapes(shape: Tuple[int, int], dynamic_batch: bool,
                 dynamic_shape: bool) -> List[Tuple[int, int, int]]:
    """(batch, h, w) the file is checked at: the export shape, then the free dimensions."""
    shapes = [(1, *shape)]
    if dynamic_batch:
        shapes.append((2, *shape))
    if dynamic_shape:
        shapes += [(1, shape[0] // 2 + 8, shape[1] // 2), (1, 32, 32)]
    return shapes


def main() -> int:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    target = build_export_target(cfg, args.checkpoint)
    print(f'weights: {target.weights}')
    if target.skipped_pretrained:
        print('  Pretrained entries skipped (nothing is downloaded; those parts keep their own '
              'init): ' + ', '.join(target.skipped_pretrained))
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
    failures = [f'operators outside the standard ONNX domain: {nonstandard_operators(out)}'
                ] if nonstandard_operators(out) else []
    for batch, h, w in check_shapes(shape, args.dynamic_batch, args.dynamic_shape):
        inputs = torch.randn(batch, 3, h, w)
        with torch.no_grad():
            expected = target.module(inputs)
        expected = expected if isinstance(expected, (tuple, list)) else (expected, )
        try:
            got = onnxruntime_outputs(out, inputs)
        except Exception as err:  # ONNX Runtime refusing the file is a failure, named
            failures.append(f'ONNX Runtime could not run it at {batch}x3x{h}x{w}: {err}')
            continue
        for check in compare_outputs(expected, got, target.output_names, args.rtol, args.atol):
            verdict = 'ok' if check.ok else 'FAIL'
            print(f'  {batch}x3x{h}x{w} {check.name} {check.shape}: max |onnx - torch| = '
                  f'{check.max_abs_diff:.2e} (allowed {check.allowed:.2e}) {verdict}')
            if not check.ok:
                failures.append(f'{check.name} at {batch}x3x{h}x{w} differs by '
                                f'{check.max_abs_diff:.2e} > {check.allowed:.2e}')
    if failures:
        print('ONNX export check FAILED:\n  ' + '\n  '.join(failures), file=sys.stderr)
        return 1
    print(f'ONNX Runtime matches PyTorch (rtol {args.rtol:g}, atol {args.atol:g})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
