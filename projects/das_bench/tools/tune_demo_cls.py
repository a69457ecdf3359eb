"""Choose the classification demo's learning rates on val (``make tune-cls``).

Each model of the demo (DAS-ResNet-18 and its plain twin, quarter width) is trained at every
learning rate of ``das_bench.CLS_LR_GRID`` (AdamW, the demo's 15 epochs, one seed); the rate
with the best val top-1 is chosen (the first of equals in grid order), and the test top-1 at it
is printed beside. The configs must hold the chosen rates: the tool says which config to change
and exits 1 when one does not. The project's ``tools/compare_gates.py`` tries every module
with the same grid.
"""
import argparse
import os.path as osp
import sys
import time
from typing import List, Optional

import mmdas  # noqa: F401
from das_bench import CLS_CONFIGS, CLS_LR_GRID, Stages, ensure_shapes_data, say_done, search_lr
from mmdas.datasets import shapes_cfg


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/tune_cls')
    parser.add_argument('--data-root', default='data/shapes_cls')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--grid', nargs='+', type=float, default=list(CLS_LR_GRID))
    parser.add_argument('--epochs', type=int, help="default: the configs' own")
    parser.add_argument('--verbose', action='store_true', help="print mmengine's full logs")
    args = parser.parse_args(argv)
    start = time.time()
    ensure_shapes_data('classification', args.data_root)
    stages = Stages(total=len(CLS_CONFIGS) * len(args.grid), verbose=args.verbose)
    rows, stale = [], []
    for name, path in CLS_CONFIGS.items():
        cfg = shapes_cfg(path, args.data_root, args.seed, args.epochs)
        configured = cfg.optim_wrapper.optimizer.lr
        search = search_lr(cfg, args.grid, name, args.work_dir, stages)
        rows.append((name, search, configured))
        if configured != search.best_lr:
            stale.append(f'  {path}: lr={configured:g}, chosen {search.best_lr:g}')
    print(f'\nval top-1 % per learning rate (seed {args.seed}), the choice, and its test top-1:')
    print(f"{'model':<7}" + ''.join(f'{f"lr {lr:g}":>11}'
                                    for lr in args.grid) + f"{'chosen':>9}{'config':>9}{'test':>8}")
    for name, search, configured in rows:
        print(f'{name:<7}' + ''.join(f'{search.val_top1[lr]:>11.1f}' for lr in args.grid) +
              f'{search.best_lr:>9g}{configured:>9g}{search.test_top1:>8.1f}')
    print(f'runs: {osp.join(args.work_dir, "<model>_lr<lr>_seed<seed>")}')
    say_done(start)
    if stale:
        print('these configs do not hold the rate chosen on val; write it there:\n' +
              '\n'.join(stale))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
