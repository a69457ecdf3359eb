"""Train an mmdet or mmpretrain config (with DAS backbones) - mmdet's train.py, thin.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
                          [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

mmdet's and mmpretrain's own ``tools/train.py`` work with these configs too
(they import ``mmdas`` through ``custom_imports``). This one adds CPU-only distributed runs
(gloo) for ``torchrun ... --launcher pytorch`` on machines without CUDA.
"""
import argparse
import os.path as osp

from mmengine.config import Config

import mmdas  # noqa: F401  (registers the DAS modules)
from mmdas.engine import add_train_args, apply_train_args, build_runner, init_distributed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector or classifier')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or from the latest checkpoint in the work dir')
    add_train_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    apply_train_args(cfg, args)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs',
        osp.splitext(osp.basename(args.config))[0])
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    init_distributed(cfg, args.launcher)
    build_runner(cfg).train()


if __name__ == '__main__':
    main()
