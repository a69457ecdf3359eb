"""Classification demo on CPU: DAS-ResNet-18 and its plain twin (quarter width) on synthetic
shape images, trained from scratch through mmpretrain's runner.

Writes the images once (mmpretrain folder layout, 4 classes, object masks beside them), trains
and tests both models, prints top-1 against chance (25 %), and draws where both look for a few
val images (gate maps and Grad-CAM, tools/analysis/visualize_attention.py). One progress bar
per stage; mmengine's full logs stay in the work dirs (``--verbose`` prints them). ``--seeds
0 1 2`` trains once per seed and reports the mean and spread (``make demo-seeds``). A model
that finished training under the same config is reused; one trained under another config stops
the demo with the difference named (see :func:`mmdas.engine.run_stage`).
"""
import argparse
import contextlib
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

from mmengine.config import Config
from mmengine.runner import find_latest_checkpoint

import mmdas  # noqa: F401
from mmdas.datasets import SHAPE_CLASSES, make_shapes_folder
from mmdas.engine import build_runner, quiet_cfg, quiet_console, run_stage

CONFIGS = dict(
    das='configs/mmpretrain/demo/das-resnet18-w16_shapes-cls.py',
    plain='configs/mmpretrain/demo/resnet18-w16_shapes-cls.py')
PICTURED = ('val/cross/00001.png', 'val/disc/00003.png', 'val/square/00005.png',
            'val/triangle/00007.png')


def train_and_test(config: str, data_root: str, work_dir: str, seed: int, title: str,
                   verbose: bool) -> float:
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = data_root
    os.makedirs(work_dir, exist_ok=True)
    quiet = contextlib.nullcontext() if verbose else quiet_console(
        osp.join(work_dir, 'console.log'))
    with quiet:
        checkpoint = run_stage(cfg if verbose else quiet_cfg(cfg, title), work_dir)
        cfg.load_from = checkpoint
        return build_runner(cfg if verbose else quiet_cfg(cfg, title)).test()['accuracy/top1']


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/demo_cls')
    parser.add_argument('--data-root', default='data/shapes_cls')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--verbose', action='store_true', help="print mmengine's full logs")
    args = parser.parse_args()
    start = time.time()
    if not osp.isdir(osp.join(args.data_root, 'masks', 'val')):
        print(f'writing the synthetic shape images to {args.data_root}')
        make_shapes_folder(args.data_root)
    top1 = {name: {} for name in CONFIGS}
    runs = [(seed, name) for seed in args.seeds for name in CONFIGS]
    for i, (seed, name) in enumerate(runs, 1):
        work_dir = osp.join(args.work_dir, name if len(args.seeds) == 1 else f'{name}_seed{seed}')
        top1[name][seed] = train_and_test(CONFIGS[name], args.data_root, work_dir, seed,
                                          f'[{i}/{len(runs)}] {name}, seed {seed}', args.verbose)
    chance = 100 / len(SHAPE_CLASSES)
    print(f'\nval top-1 on synthetic shapes (chance {chance:.0f} %), quarter-width ResNet-18:')
    for name, by_seed in top1.items():
        values = list(by_seed.values())
        summary = (f'{values[0]:.1f} %' if len(values) == 1 else
                   f'{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f} % '
                   f'(seeds {list(by_seed)}: ' + ', '.join(f'{v:.1f}' for v in values) + ')')
        print(f'  {name:<6} {summary}')
    seed = args.seeds[0]
    ckpt = {
        name:
        find_latest_checkpoint(
            osp.join(args.work_dir, name if len(args.seeds) == 1 else f'{name}_seed{seed}'))
        for name in CONFIGS
    }
    out = osp.join(args.work_dir, 'attention')
    images = [osp.join(args.data_root, p) for p in PICTURED]
    command = [
        sys.executable, 'tools/analysis/visualize_attention.py', CONFIGS['das'], ckpt['das'],
        *images, '--compare', CONFIGS['plain'], ckpt['plain'], '--out', out
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f'\nwhere they look (seed {seed}, DAS above plain): {out}/*.png')
    print(f'full logs: {args.work_dir}/*/<timestamp>/<timestamp>.log and console.log per run')
    minutes, seconds = divmod(int(time.time() - start), 60)
    print(f'done in {minutes} min {seconds} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
