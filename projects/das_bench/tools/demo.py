"""Detection demo on CPU: DAS vs vanilla Faster R-CNN on synthetic shapes, the paper's recipe
at demo scale, in minutes.

1. writes the synthetic sets (once): COCO-format detection shapes to ``data/shapes`` and the
   classification shapes to ``data/shapes_cls`` (train / val / test each);
2. pretrains the backbone: the plain classifier of ``make demo-cls`` (quarter-width ResNet-18,
   the detectors' backbone exactly) on the classification shapes, the stand-in for ImageNet;
3. trains a vanilla Faster R-CNN from that backbone (checked ``Pretrained`` loading), the
   "trained vanilla detector" the paper's warm-up starts from;
4. for the DAS backbone (fresh gates inserted) and for the vanilla one, the same two-stage
   schedule from it: backbone warm-up (heads frozen), then full fine-tune;
5. evaluates both on the test split with COCO bbox AP (pycocotools), side by side;
6. draws a few test images: ground truth, DAS detections, vanilla detections.

Nothing in the detection recipe was chosen by looking at results: mmdet's SGD settings, the
stage lengths set by the 10-minute budget of ``make demo`` on 2 CPU cores.

The console shows one progress bar per stage; mmengine's full logs stay in each stage's work
dir (``--verbose`` prints them instead). Each schedule trains in its own work dir
(``work_dirs/demo/pretrain-<epochs>ep_iters-<base>-<warm-up>-<fine-tune>/seed<seed>`` by
default); a stage that finished under the same config, data and starting weights is reused
(``make demo-seeds`` after ``make demo`` trains seeds 1 and 2 only) and one that was
interrupted resumes, anything else stops with the difference named (``--retrain-stale`` trains
it again). ``--seeds 0 1 2`` repeats
it all per seed (the pretraining included) and reports the mean, the spread and each seed's
difference DAS minus vanilla (``make demo-seeds``). ``--finetune-iters 150 300 600`` runs both
arms at each fine-tune length from the same vanilla detector per seed and reports each length:
the longer-training control of the demo's gap (``make controls-det``).
"""
import argparse
import os.path as osp
import sys
import time
from typing import Dict, List, Optional

import numpy as np

import mmdas  # noqa: F401
from das_bench import (DET_CONFIGS, DetectionSchedule, Stages, ensure_shapes_data, mean_sd,
                       paired_differences, say_done, train_and_test_detectors, vanilla_start)

#: COCO's metrics but AP_l: at 160 px no object reaches COCO's "large" (96 x 96 px), so it is
#: always -1.
METRICS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m')


def draw_detections(checkpoints: Dict[str, str], data_root: str, path: str, count: int) -> None:
    """``count`` test images in rows: ground truth, then each model's detections (score >=
    0.3)."""
    import cv2
    from mmdet.apis import inference_detector, init_detector
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.structures import InstanceData
    from pycocotools.coco import COCO
    coco = COCO(osp.join(data_root, 'annotations', 'instances_test.json'))
    models = {
        name: init_detector(DET_CONFIGS[name], ckpt, device='cpu')
        for name, ckpt in checkpoints.items()
    }
    visualizer = DetLocalVisualizer.get_instance('demo_detections')
    visualizer.dataset_meta = next(iter(models.values())).dataset_meta
    rows = []
    for image_id in sorted(coco.getImgIds())[:count]:
        info = coco.loadImgs(image_id)[0]
        image = cv2.imread(osp.join(data_root, 'test', info['file_name']))[..., ::-1]
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


def run_seed(args, seed: int, work_dir: str, stages: Stages) -> Dict[int, dict]:
    """Each fine-tune length's metrics and picture for ``seed``. Every length starts from the
    same pretrained backbone and vanilla detector (trained once per seed); with several
    lengths each arm's work dir names its length (``das_finetune-300``)."""
    start = vanilla_start(DET_CONFIGS['vanilla'], schedule(args, args.finetune_iters[0]),
                          (args.data_root, args.cls_data_root), seed, work_dir, stages,
                          args.retrain_stale)
    results = {}
    for finetune in args.finetune_iters:
        suffix = f'_finetune-{finetune}' if len(args.finetune_iters) > 1 else ''
        arms = {name + suffix: cfg for name, cfg in DET_CONFIGS.items()}
        runs = train_and_test_detectors(arms, start, schedule(args, finetune), args.data_root, seed,
                                        work_dir, stages, args.retrain_stale)
        picture = osp.join(work_dir, f'detections{suffix}.png')
        with stages.console(work_dir):
            draw_detections({name: runs[name + suffix].checkpoint
                             for name in DET_CONFIGS}, args.data_root, picture, args.pictures)
        results[finetune] = dict(
            metrics={name: runs[name + suffix].metrics
                     for name in DET_CONFIGS}, picture=picture)
    return results


def schedule(args, finetune: int) -> DetectionSchedule:
    return DetectionSchedule(args.pretrain_epochs, args.base_iters, args.warmup_iters, finetune)


def report(runs: Dict[int, dict], finetune: int) -> None:
    names = list(DET_CONFIGS)
    print(f'\nCOCO bbox AP on the synthetic test split (pycocotools), fine-tune {finetune} '
          'iterations, same pretrained start, data and schedule' +
          (f', mean ± sd over seeds {list(runs)}:' if len(runs) > 1 else ':'))
    print(f"{'metric':<14}" + ''.join(f'{name:>16}' for name in names))
    for metric in METRICS:
        cells = [
            mean_sd([r['metrics'][name][f'coco/{metric}'] for r in runs.values()]) for name in names
        ]
        print(f'{metric:<14}' + ''.join(f'{c:>16}' for c in cells))
    if len(runs) == 1:
        print('(one seed on this CPU: another CPU rounds differently and gives other figures; '
              'docs/results.md gives the spread over seeds)')
    if len(runs) > 1:
        ap = {
            name: {
                seed: r['metrics'][name]['coco/bbox_mAP']
                for seed, r in runs.items()
            }
            for name in names
        }
        per_seed = ', '.join(f'seed {s}: ' + ' / '.join(f'{ap[n][s]:.3f}' for n in names)
                             for s in runs)
        print(f'bbox_mAP per seed ({" / ".join(names)}): {per_seed}')
        differences = paired_differences(ap['das'], ap['vanilla'])
        print('paired difference das - vanilla, bbox_mAP: ' +
              ', '.join(f'seed {s}: {d:+.3f}' for s, d in differences.items()) +
              f'; mean ± sd {mean_sd(list(differences.values()), "+.3f")}')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--work-dir',
        help='default: work_dirs/demo/pretrain-<epochs>ep_iters-<base>-<warm-up>-<fine-tune>, '
        'the fine-tune lengths joined by + when there are several')
    parser.add_argument('--data-root', default='data/shapes')
    parser.add_argument(
        '--cls-data-root',
        default='data/shapes_cls',
        help='the classification shapes the backbone is pretrained on')
    # Lengths set by the time budget (make demo cold within 10 min on 2 cores), not by results:
    # with RoIAlign through torchvision's kernel, 200 / 40 / 150 iterations fit it.
    parser.add_argument(
        '--pretrain-epochs',
        type=int,
        default=15,
        help="the backbone's classification pretraining (the classification demo's length)")
    parser.add_argument('--base-iters', type=int, default=200)
    parser.add_argument('--warmup-iters', type=int, default=40)
    parser.add_argument(
        '--finetune-iters',
        type=int,
        nargs='+',
        default=[150],
        help='one length, or several (e.g. 150 300 600: the longer-training control), each '
        'from the same vanilla detector per seed')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--pictures', type=int, default=4, help='val images drawn')
    parser.add_argument('--verbose', action='store_true', help="print mmengine's full logs")
    parser.add_argument(
        '--retrain-stale',
        action='store_true',
        help='a stage in the work dir trained under another config is moved aside and trained '
        'again, instead of stopping the demo')
    args = parser.parse_args(argv)
    if args.work_dir is None:
        # the schedule's name, its last field (the fine-tune length) replaced by every length
        lengths = '+'.join(str(n) for n in args.finetune_iters)
        name = schedule(args, args.finetune_iters[0]).name().rsplit('-', 1)[0]
        args.work_dir = osp.join('work_dirs', 'demo', f'{name}-{lengths}')
    start = time.time()
    ensure_shapes_data('detection', args.data_root)
    ensure_shapes_data('classification', args.cls_data_root)
    # per seed: the pretraining, the vanilla detector, and per length each arm's warm-up,
    # fine-tune and evaluation
    stages = Stages(
        total=(2 + 3 * len(DET_CONFIGS) * len(args.finetune_iters)) * len(args.seeds),
        verbose=args.verbose)
    runs = {}
    for seed in args.seeds:
        runs[seed] = run_seed(args, seed, osp.join(args.work_dir, f'seed{seed}'), stages)
    for finetune in args.finetune_iters:
        report({seed: results[finetune] for seed, results in runs.items()}, finetune)
    print('\npicture of detections: ' + ', '.join(r['picture'] for results in runs.values()
                                                  for r in results.values()))
    print(f'full logs: {args.work_dir}/**/<timestamp>/<timestamp>.log and console.log per stage')
    say_done(start)
    return 0


if __name__ == '__main__':
    sys.exit(main())
