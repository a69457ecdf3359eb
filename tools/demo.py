"""Detection demo on CPU: DAS vs vanilla Faster R-CNN on synthetic shapes, in minutes.

1. writes the synthetic COCO-format set to ``data/shapes`` (once);
2. trains a vanilla Faster R-CNN (the "trained vanilla detector" the paper's warm-up starts from);
3. for the DAS backbone and for the vanilla one, the same two-stage schedule from it: backbone
   warm-up (heads frozen), then full fine-tune;
4. evaluates both with COCO bbox AP (pycocotools) and prints them side by side;
5. draws a few val images: ground truth, DAS detections, vanilla detections.

The console shows one progress bar per stage; mmengine's full logs stay in each stage's work
dir (``--verbose`` prints them instead). Each schedule trains in its own work dir
(``work_dirs/demo/iters-<base>-<warm-up>-<fine-tune>`` by default); a stage that finished
under the same config is reused and one that was interrupted resumes, anything else stops
with the difference named (``--retrain-stale`` trains it again). ``--seeds 0 1 2`` repeats
it all per seed and reports the mean and spread (``make demo-seeds``).
"""
import argparse
import os.path as osp
import sys
import time
from typing import Dict

import numpy as np

import mmdas  # noqa: F401
from mmdas.demos import (DET_CONFIGS, DetectionSchedule, Stages, ensure_shapes_data, mean_sd,
                         say_done, train_and_test_detectors)

METRICS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l')


def draw_detections(checkpoints: Dict[str, str], data_root: str, path: str, count: int) -> None:
    """``count`` val images in rows: ground truth, then each model's detections (score >= 0.3)."""
    import cv2
    from mmdet.apis import inference_detector, init_detector
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.structures import InstanceData
    from pycocotools.coco import COCO
    coco = COCO(osp.join(data_root, 'annotations', 'instances_val.json'))
    models = {
        name: init_detector(DET_CONFIGS[name], ckpt, device='cpu')
        for name, ckpt in checkpoints.items()
    }
    visualizer = DetLocalVisualizer.get_instance('demo_detections')
    visualizer.dataset_meta = next(iter(models.values())).dataset_meta
    rows = []
    for image_id in sorted(coco.getImgIds())[:count]:
        info = coco.loadImgs(image_id)[0]
        image = cv2.imread(osp.join(data_root, 'val', info['file_name']))[..., ::-1]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        truth = DetDataSample()
        truth.gt_instances = InstanceData(
            bboxes=np.array([[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)],
                            np.float32).reshape(-1, 4),
            labels=np.array([a['category_id'] - 1 for a in anns], np.int64))
        panels = []
        visualizer.add_datasample('truth', image, truth, draw_pred=False)
        panels.append(visualizer.get_image())
        for model in models.values():
            result = inference_detector(model, image[..., ::-1].copy())
            visualizer.add_datasample('pred', image, result, draw_gt=False, pred_score_thr=0.3)
            panels.append(visualizer.get_image())
        rows.append(np.concatenate(panels, 1))
    header = np.full((24, rows[0].shape[1], 3), 255, np.uint8)
    width = rows[0].shape[1] // (1 + len(models))
    for i, title in enumerate(['ground truth'] + [f'{n} (score >= 0.3)' for n in models]):
        cv2.putText(header, title, (i * width + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.imwrite(path, np.concatenate([header] + rows, 0)[..., ::-1])


def run_seed(args, seed: int, work_dir: str, stages: Stages) -> Dict[str, dict]:
    schedule = DetectionSchedule(args.base_iters, args.warmup_iters, args.finetune_iters)
    runs = train_and_test_detectors(DET_CONFIGS, DET_CONFIGS['vanilla'], schedule, args.data_root,
                                    seed, work_dir, stages, args.retrain_stale)
    picture = osp.join(work_dir, 'detections.png')
    with stages.console(work_dir):
        draw_detections({
            name: run.checkpoint
            for name, run in runs.items()
        }, args.data_root, picture, args.pictures)
    return dict(metrics={name: run.metrics for name, run in runs.items()}, picture=picture)


def report(runs: Dict[int, dict]) -> None:
    names = list(DET_CONFIGS)
    print('\nCOCO bbox AP on the synthetic val set (pycocotools), same data and schedule' +
          (f', mean ± sd over seeds {list(runs)}:' if len(runs) > 1 else ':'))
    print(f"{'metric':<14}" + ''.join(f'{name:>16}' for name in names))
    for metric in METRICS:
        cells = [
            mean_sd([r['metrics'][name][f'coco/{metric}'] for r in runs.values()]) for name in names
        ]
        print(f'{metric:<14}' + ''.join(f'{c:>16}' for c in cells))
    if len(runs) > 1:
        per_seed = ', '.join(f"seed {s}: " + ' / '.join(f"{r['metrics'][n]['coco/bbox_mAP']:.3f}"
                                                        for n in names) for s, r in runs.items())
        print(f'bbox_mAP per seed (das / vanilla): {per_seed}')


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--work-dir', help='default: work_dirs/demo/iters-<base>-<warm-up>-<fine-tune>')
    parser.add_argument('--data-root', default='data/shapes')
    # 200 + 2 x (40 + 150) iterations: about 8.5 min on 2 cores (300/60/200 took 12.5 min)
    parser.add_argument('--base-iters', type=int, default=200)
    parser.add_argument('--warmup-iters', type=int, default=40)
    parser.add_argument('--finetune-iters', type=int, default=150)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--pictures', type=int, default=4, help='val images drawn')
    parser.add_argument('--verbose', action='store_true', help="print mmengine's full logs")
    parser.add_argument(
        '--retrain-stale',
        action='store_true',
        help='a stage in the work dir trained under another config is moved aside and trained '
        'again, instead of stopping the demo')
    args = parser.parse_args()
    if args.work_dir is None:
        args.work_dir = osp.join(
            'work_dirs', 'demo',
            DetectionSchedule(args.base_iters, args.warmup_iters, args.finetune_iters).name())
    start = time.time()
    ensure_shapes_data('detection', args.data_root)
    stages = Stages(total=7 * len(args.seeds), verbose=args.verbose)
    runs = {}
    for seed in args.seeds:
        work_dir = args.work_dir if len(args.seeds) == 1 else osp.join(args.work_dir, f'seed{seed}')
        runs[seed] = run_seed(args, seed, work_dir, stages)
    report(runs)
    print('\npicture of detections: ' + ', '.join(r['picture'] for r in runs.values()))
    print(f'full logs: {args.work_dir}/**/<timestamp>/<timestamp>.log and console.log per stage')
    say_done(start)
    return 0


if __name__ == '__main__':
    sys.exit(main())
