"""Compare DAS with the attention modules it competes with and with the controls a reviewer asks
for (a wider plain network of DAS's parameter count, other gates, longer training), all at the
DAS placement, under one protocol (das_bench.comparison).

    python projects/das_bench/tools/compare_gates.py
        [--sections cost latency growth accuracy detection] [--gates none DAS wide SE ...]
        [--seeds 0 1 2 3 4] [--out work_dirs/compare_gates]
    python projects/das_bench/tools/compare_gates.py --report [--docs docs/comparison.md]

Sections (each merged into OUT/compare_gates.json as it is measured, so they run apart and an
interrupted run keeps what finished):
  cost       parameters and multiply-adds of ResNet-50 at 224x224 with each module
  latency    CPU forward latency of those backbones, batch 1, one run, alternating
  growth     each gate alone (256 channels) at map sizes 14 to 112 px: latency exponent
  accuracy   the classification demo's model (quarter-width ResNet-18, from scratch) on the
             harder shapes set: each module's learning rate chosen on val at --short-epochs,
             then its epoch count chosen on val from --epoch-grid at that rate, then every seed
             at both on test; paired differences against no gate, 95 % t-intervals
  detection  the detection demo's recipe: per seed one pretrained backbone and one plain
             detector, then each module's warm-up and fine-tune from it; test bbox AP
--report writes OUT/compare_gates.md and OUT/compare_gates.png from the JSON alone (no training)
and, with --docs, the tables into that file between its markers.
"""
import argparse
import logging
import os
import os.path as osp
import shutil
import sys
import time

from mmengine.logging import MMLogger

import mmdas  # noqa: F401
from das_bench import CLS_LR_GRID, comparison, comparison_report


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--sections',
        nargs='+',
        default=['cost', 'latency', 'growth', 'accuracy'],
        choices=['cost', 'latency', 'growth', 'accuracy', 'detection'])
    parser.add_argument(
        '--gates',
        nargs='+',
        choices=list(comparison.VARIANTS),
        help='default: every module (the detection section: every one that inserts into the '
        'plain detector, the width control excepted)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument(
        '--lr-grid', nargs='+', type=float, default=list(CLS_LR_GRID), help='accuracy section')
    parser.add_argument('--short-epochs', type=int, default=15, help='the rate is chosen here')
    parser.add_argument('--epoch-grid', nargs='+', type=int, default=[15, 30, 60])
    parser.add_argument('--val-interval', type=int, default=5, help='epochs between val points')
    parser.add_argument(
        '--growth-sizes', nargs='+', type=int, default=list(comparison.GROWTH_SIZES))
    parser.add_argument('--data-root', default='data/shapes_cls_hard', help='accuracy section')
    parser.add_argument(
        '--data-set',
        default='classification-hard',
        choices=['classification-hard', 'classification'],
        help="the set written to --data-root when it is empty ('classification': the demo's)")
    parser.add_argument('--det-data-root', default='data/shapes')
    parser.add_argument('--cls-data-root', default='data/shapes_cls', help='detection pretraining')
    parser.add_argument('--out', default='work_dirs/compare_gates')
    parser.add_argument('--report', action='store_true', help='tables and plot from the JSON only')
    parser.add_argument('--docs', help='with --report: write the tables into this Markdown file')
    parser.add_argument(
        '--threshold', type=float, default=80.0, help='val top-1 %% for "epochs to"')
    args = parser.parse_args(argv)
    if args.docs and not args.report:
        parser.error('--docs goes with --report')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    # mmengine logs every initialised tensor at INFO level; keep the console to the results.
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    os.makedirs(args.out, exist_ok=True)
    store = comparison.Store(osp.join(args.out, 'compare_gates.json'))
    start = time.time()
    if not args.report:
        protocol = comparison.Protocol(
            tuple(args.lr_grid), args.short_epochs, tuple(args.epoch_grid), tuple(args.seeds),
            args.val_interval)
        gates = args.gates or list(comparison.VARIANTS)
        run = dict(
            cost=lambda: comparison.cost_section(gates, store),
            latency=lambda: comparison.latency_section(gates, args.rounds, store),
            growth=lambda: comparison.growth_section(gates, args.growth_sizes, args.rounds, store),
            accuracy=lambda: comparison.accuracy_section(gates, protocol, args.data_root, args.
                                                         data_set, args.out, store),
            detection=lambda: comparison.detection_section(
                args.gates or list(comparison.DETECTION_VARIANTS), args.seeds, args.det_data_root,
                args.cls_data_root, args.out, store))
        for section in args.sections:
            print(f'== {section}', flush=True)
            run[section]()
    text = comparison_report.markdown(store.data, args.threshold)
    with open(osp.join(args.out, 'compare_gates.md'), 'w') as f:
        f.write(text + '\n')
    comparison_report.plot(store.data, osp.join(args.out, 'compare_gates.png'))
    if args.docs:
        comparison_report.write_between_markers(args.docs, text)
        shutil.copy(
            osp.join(args.out, 'compare_gates.png'),
            osp.join(osp.dirname(args.docs), 'compare_gates.png'))
    print(text)
    print(f'\n{args.out}/compare_gates.md, compare_gates.png ({time.time() - start:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
