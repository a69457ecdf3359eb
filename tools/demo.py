"""End-to-end detection demo on CPU: DAS vs vanilla Faster R-CNN on synthetic shapes.

1. writes the synthetic COCO-format set to ``data/shapes`` (once);
2. trains a vanilla Faster R-CNN (the "trained vanilla detector" the paper's warm-up starts from);
3. for the DAS backbone and for the vanilla one, runs the same two-stage schedule from it:
   backbone warm-up (heads frozen), then full fine-tune;
4. evaluates both with COCO bbox AP (pycocotools) and prints the tables side by side;
5. saves the val images with drawn detections (ground truth left, detections right).

Every stage skips when done and resumes when interrupted, so re-running is cheap.
"""
import argparse
import os.path as osp

from mmengine.config import Config

import mmdas  # noqa: F401
from mmdas.datasets import make_shapes_coco
from mmdas.engine import backbone_warmup_cfg, build_runner, run_stage, run_two_stage

CONFIGS = dict(
    das='configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py',
    vanilla='configs/das/demo/faster-rcnn_r18-w16_fpn_shapes.py')
METRICS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l')


def iter_cfg(path: str, iters: int, work_dir: str) -> Config:
    cfg = Config.fromfile(path)
    cfg.train_cfg.update(max_iters=iters, val_interval=iters)
    cfg.param_scheduler[1].update(end=iters, milestones=[int(iters * 0.8)])
    cfg.default_hooks.checkpoint.interval = iters
    cfg.work_dir = work_dir
    return cfg


def evaluate(path: str, checkpoint: str, work_dir: str, show_dir: str = None) -> dict:
    cfg = Config.fromfile(path)
    cfg.work_dir, cfg.load_from = work_dir, checkpoint
    if show_dir:  # mmdet's hook draws every test image: ground truth left, detections right
        cfg.default_hooks.visualization.update(draw=True, test_out_dir=osp.abspath(show_dir))
    return build_runner(cfg).test()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/shapes')
    parser.add_argument('--base-iters', type=int, default=300)
    parser.add_argument('--warmup-iters', type=int, default=60)
    parser.add_argument('--finetune-iters', type=int, default=200)
    args = parser.parse_args()

    if not osp.isfile(osp.join(args.data_root, 'annotations', 'instances_val.json')):
        make_shapes_coco(args.data_root)
    wd = args.work_dir
    base = run_stage(
        iter_cfg(CONFIGS['vanilla'], args.base_iters, wd), osp.join(wd, 'base_vanilla'))
    results = {}
    for name, path in CONFIGS.items():
        finetune = iter_cfg(path, args.finetune_iters, wd)
        warmup = backbone_warmup_cfg(iter_cfg(path, args.warmup_iters, wd))
        final = run_two_stage([warmup, finetune], osp.join(wd, name), stage1_load_from=base)
        results[name] = evaluate(
            path, final, osp.join(wd, name, 'test'), show_dir=osp.join(wd, name, 'detections'))

    print('\nCOCO bbox AP on the synthetic val set (pycocotools), same data and schedule:')
    print(f"{'metric':<14}" + ''.join(f'{name:>10}' for name in results))
    for metric in METRICS:
        row = ''.join(f"{results[name][f'coco/{metric}']:>10.3f}" for name in results)
        print(f'{metric:<14}{row}')
    print(f'\nimages with drawn detections: {osp.join(wd, "*", "detections")}')


if __name__ == '__main__':
    main()
