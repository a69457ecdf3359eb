"""Latency and memory of the DAS deformable conv, DAS backbones, a Faster R-CNN training step
and the ONNX Runtime deployment, each comparison measured within one run.

A command line over das_bench.benchmark. Each variant is warmed until its time settles
(das_bench.timing), then the variants alternate round by round; medians and ratios are
reported (machines are noisy and differ: compare ratios from one run).

    python projects/das_bench/tools/benchmark.py [--device cpu|cuda] [--rounds 7] [--quick]
        [--sections op backbone detector growth memory onnx onnx_detector onnx_rtmdet]
        [--before REV]
        [--out work_dirs/bench]

Sections:
  op        the deformable conv of each of DAS-ResNet-50's four gates at 224x224 (51->256 at
            56x56 ... 410->2048 at 7x7), offsets and mask given, channels-last as the gate
            hands them over: the pure-PyTorch path (now and --before), mmcv's kernel, against a
            plain nn.Conv2d of the same shape on an NCHW map; forward and forward+backward
  backbone  DAS-ResNet-50 against ResNet-50, forward, 224x224 batch 1 and 32, 800x1216 batch 1;
            NCHW (the default) and, as extra rows, both models channels-last
  detector  one Faster R-CNN training step (1333x800, batch 2), DAS-R50 against R50
  growth    a DAS gate (256 ch) against mmcv's NonLocal2d at the same place, forward, at several
            map sizes; the exponent of latency against pixel count is fitted and plotted
  memory    one forward and backward of that training step, R50 and DAS-R50, with_cp off and
            on, each in a fresh process: CUDA's max allocated, or on CPU the peak resident
            size and the bytes the forward keeps for backward (mmdas.analysis.memory)
  onnx      ONNX Runtime (CPU) latency at 224x224 batch 1 of DAS-R50 and ResNet-50 exported by
            mmdas.deployment, against the same models in PyTorch
  onnx_detector  each exported detector family (Faster, Mask and Cascade R-CNN, RetinaNet,
            FCOS; DAS-R50 and R50) at 1333x800, image to detections: ONNX Runtime against
            mmdet's inference_detector
  onnx_rtmdet  RTMDet-tiny with DAS gates against RTMDet-tiny, whole, at 640x640, the same way
``--before REV`` loads the pure-PyTorch deformable conv of a git revision into the same run,
as the "before" variant of the op, backbone and detector sections. Writes OUT/benchmark.md
and OUT/gate_scaling.png and prints the table.
"""
import argparse
import os
from typing import List, Optional

import torch

import mmdas  # noqa: F401
from das_bench.benchmark import SECTIONS, Bench, load_before, run_benchmark


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--sections', nargs='+', default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument(
        '--before',
        help='git revision whose pure-PyTorch deformable conv is run as the "before" '
        'variant (default: none)')
    parser.add_argument(
        '--quick', action='store_true', help='fewer rounds and only 224x224 for the backbone')
    parser.add_argument('--out', default='work_dirs/bench')
    args = parser.parse_args(argv)
    if args.device != 'cpu' and {'onnx', 'onnx_detector', 'onnx_rtmdet'} & set(args.sections):
        parser.error("the onnx section measures ONNX Runtime on the CPU: leave it out of "
                     '--sections or use --device cpu')
    try:
        before = load_before(args.before) if args.before else None
    except ValueError as err:
        parser.error(str(err))
    os.makedirs(args.out, exist_ok=True)
    bench = Bench(
        device=args.device,
        rounds=3 if args.quick else args.rounds,
        sizes=[(1, 224, 224)] if args.quick else [(1, 224, 224), (32, 224, 224), (1, 800, 1216)],
        before=before,
        out=args.out)
    print(run_benchmark(bench, args.sections, args.before))


if __name__ == '__main__':
    main()
