"""Classification demo on CPU: DAS-ResNet-18 and its plain twin (quarter width) on synthetic
shape images, trained from scratch through mmpretrain's runner.

Writes the images once (mmpretrain folder layout, 4 classes, train / val / test, object masks
beside them), trains both models, each at its own learning rate (the best on val of
das_bench.CLS_LR_GRID, chosen by ``make tune-cls`` and written in its config), prints test
top-1 against chance (25 %), and draws where both look for a few test images (gate maps and
Grad-CAM, tools/analysis/visualize_attention.py). One progress bar
per stage; mmengine's full logs stay in the work dirs (``--verbose`` prints them). ``--seeds
0 1 2`` trains once per seed and reports the mean, the spread and each seed's difference DAS
minus plain (``make demo-seeds``). A model
that finished training under the same config is reused (``make demo-seeds`` after ``make
demo-cls`` trains seeds 1 and 2 only); one trained under another config stops the demo with the
difference named (see :func:`mmdas.engine.run_stage`).
"""
import argparse
import os.path as osp
import subprocess
import sys
import time
from typing import List, Optional

from mmengine.runner import find_latest_checkpoint

import mmdas  # noqa: F401
from das_bench import (CLS_CONFIGS, Stages, ensure_shapes_data, mean_sd, paired_differences,
                       say_done, train_and_test)
from mmdas.datasets import SHAPE_CLASSES, shapes_cfg

PICTURED = ('test/cross/00001.png', 'test/disc/00003.png', 'test/square/00005.png',
            'test/triangle/00007.png')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/demo_cls')
    parser.add_argument('--data-root', default='data/shapes_cls')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--verbose', action='store_true', help="print mmengine's full logs")
    args = parser.parse_args(argv)
    start = time.time()
    ensure_shapes_data('classification', args.data_root)
    top1 = {name: {} for name in CLS_CONFIGS}
    runs = [(seed, name) for seed in args.seeds for name in CLS_CONFIGS]
    stages = Stages(total=len(runs), verbose=args.verbose)
    for seed, name in runs:
        work_dir = osp.join(args.work_dir, f'{name}_seed{seed}')
        cfg = shapes_cfg(CLS_CONFIGS[name], args.data_root, seed)
        metrics = train_and_test(cfg, work_dir, stages, f'{name}, seed {seed}')
        top1[name][seed] = metrics['accuracy/top1']
    chance = 100 / len(SHAPE_CLASSES)
    print(f'\ntest top-1 on synthetic shapes (chance {chance:.0f} %), quarter-width ResNet-18, '
          'each at its own learning rate (chosen on val):')
    for name, by_seed in top1.items():
        values = list(by_seed.values())
        summary = f'{mean_sd(values, ".1f")} %' + (f' (seeds {list(by_seed)}: ' + ', '.join(
            f'{v:.1f}' for v in values) + ')' if len(values) > 1 else '')
        print(f'  {name:<6} {summary}')
    if len(args.seeds) > 1:
        differences = paired_differences(top1['das'], top1['plain'])
        print('  paired difference das - plain: ' + ', '.join(f'seed {s}: {d:+.1f}'
                                                              for s, d in differences.items()) +
              f'; mean ± sd {mean_sd(list(differences.values()), "+.1f")} points')
    seed = args.seeds[0]
    ckpt = {
        name: find_latest_checkpoint(osp.join(args.work_dir, f'{name}_seed{seed}'))
        for name in CLS_CONFIGS
    }
    out = osp.join(args.work_dir, 'attention')
    images = [osp.join(args.data_root, p) for p in PICTURED]
    command = [
        sys.executable, 'tools/analysis/visualize_attention.py', CLS_CONFIGS['das'], ckpt['das'],
        *images, '--compare', CLS_CONFIGS['plain'], ckpt['plain'], '--out', out
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f'\nwhere they look (seed {seed}, DAS above plain): {out}/*.png')
    print(f'full logs: {args.work_dir}/*/<timestamp>/<timestamp>.log and console.log per run')
    say_done(start)
    return 0


if __name__ == '__main__':
    sys.exit(main())
