"""Evaluate a checkpoint (COCO bbox AP for detectors, top-1/top-5 for classifiers).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR]
                         [--cfg-options k=v ...] [--launcher ...]

Prints the metrics of the config's evaluator: mmdet's ``CocoMetric`` prints pycocotools' AP
table. mmdet's and mmpretrain's own ``tools/test.py`` work with these configs too.
"""
import argparse
import os.path as osp

from mmengine.config import Config

import mmdas  # noqa: F401
from mmdas.engine import build_runner, init_distributed
from mmdas.engine.launch import add_launcher_args, apply_launcher_args


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation logs')
    parser.add_argument(
        '--show-dir', help='save images with drawn detections here '
        '(detection configs)')
    add_launcher_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg = Config.fromfile(args.config)
    apply_launcher_args(cfg, args)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs',
        osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show_dir:
        vis = cfg.default_hooks.get('visualization')
        if vis is None:
            raise ValueError('--show-dir needs default_hooks.visualization (detection configs)')
        vis.update(draw=True, test_out_dir=osp.abspath(args.show_dir))
    init_distributed(cfg, args.launcher)
    build_runner(cfg).test()


if __name__ == '__main__':
    main()
