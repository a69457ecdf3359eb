"""Mean salient-feature-detection (sfd) score of Grad-CAMs over a data set, per model and layer.

    python tools/analysis/sfd.py CONFIG CHECKPOINT [--compare CONFIG2 CHECKPOINT2]
        [--num-images 100] [--target-layers NAME ...] [--base 10] [--threshold 0.5]
        [--out FILE.json]

The images are the config's test set. Its relevant regions R: for the synthetic classification
demo set, each image's object mask (written beside the images); for a COCO-format set, the
union of the image's instance masks (its boxes where an instance has no mask). Grad-CAM
explains the ground-truth class of a classifier, or a detector's top-scoring detection.

    sfd = sum(s over R) / sum(s over B),  s = (base ** cam - 1) / (base - 1),
    B = R + the pixels outside R with s >= threshold

(mmdas.analysis.sfd_score). The images are spread evenly over the set. The DAS paper reports
ResNet-50 0.59 and DAS-ResNet-50 0.72 on 100 ImageNet images with Grounding-DINO + SAM regions.
Images where the score is undefined (an all-zero CAM, no object) are counted and left out of
the mean.
"""
import argparse
import json
import os.path as osp
import statistics
import sys
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from mmengine.config import Config
from mmengine.registry import DATASETS, init_default_scope
from mmengine.utils import ProgressBar

import mmdas  # noqa: F401
from mmdas.analysis import (DEFAULT_BASE, DEFAULT_THRESHOLD, UndefinedScore, explain, prepare_image,
                            sfd_score, stage_end_layers)
from mmdas.apis import init_model
from mmdas.datasets import shape_mask_path


def regions_of(cfg: Config, count: int) -> List[Tuple[str, np.ndarray, int]]:
    """``(image path, region at the image's own size, class label or -1)`` of ``count`` test
    images spread evenly over the set (a class-folder set lists its classes one after the
    other)."""
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    picked = np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round())
    items = []
    for i in picked.astype(int).tolist():
        info = dataset.get_data_info(i)
        path = info['img_path']
        if 'instances' in info:  # a detection set (COCO format)
            region = np.zeros((info['height'], info['width']), bool)
            for inst in info['instances']:
                region |= _instance_region(inst, region.shape)
            items.append((path, region, -1))
            continue
        mask = cv2.imread(shape_mask_path(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise FileNotFoundError(
                f'no object mask for {path} (looked for {shape_mask_path(path)}): sfd needs each '
                'image\'s object region; the synthetic demo set writes its masks')
        items.append((path, mask > 127, int(info['gt_label'])))
    return items


def _instance_region(inst: dict, shape) -> np.ndarray:
    from pycocotools import mask as mask_utils
    seg = inst.get('mask')
    if isinstance(seg, dict):  # RLE
        rle = dict(seg, counts=seg['counts'].encode()) if isinstance(seg['counts'], str) else seg
        return mask_utils.decode(rle).astype(bool)
    if isinstance(seg, list) and seg:  # polygons
        rles = mask_utils.frPyObjects(seg, shape[0], shape[1])
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    region = np.zeros(shape, bool)
    x1, y1, x2, y2 = (int(round(v)) for v in inst['bbox'])
    region[y1:y2, x1:x2] = True
    return region


def score_model(cfg: Config, checkpoint: str, items, layers, base: float,
                threshold: float) -> Dict[str, dict]:
    model = init_model(cfg, checkpoint)
    layers = layers or stage_end_layers(model)
    scores: Dict[str, List[float]] = {layer: [] for layer in layers}
    undefined = {layer: 0 for layer in layers}
    bar = ProgressBar(len(items))
    for path, region, label in items:
        image = prepare_image(cfg, model, path)
        exp = explain(model, image, layers, label=None if label < 0 else label)
        h, w = image.rgb.shape[:2]
        resized = cv2.resize(region.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        for layer, cam in exp.cams.items():
            try:
                scores[layer].append(sfd_score(cam, resized > 0, base, threshold))
            except UndefinedScore:  # an all-zero CAM; any other error stops the tool
                undefined[layer] += 1
        bar.update()
    print()
    return {layer: dict(scores=s, undefined=undefined[layer]) for layer, s in scores.items()}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--compare', nargs=2, metavar=('CONFIG2', 'CHECKPOINT2'))
    parser.add_argument('--num-images', type=int, default=100)
    parser.add_argument('--target-layers', nargs='+')
    parser.add_argument(
        '--base',
        type=float,
        default=DEFAULT_BASE,
        help='anti-log base: s = (base ** cam - 1) / (base - 1)')
    parser.add_argument(
        '--threshold',
        type=float,
        default=DEFAULT_THRESHOLD,
        help='scaled CAM value from which a pixel outside R counts as salient')
    parser.add_argument('--out', help='write the per-image scores to this JSON file')
    args = parser.parse_args(argv)
    runs = [(args.config, args.checkpoint)] + ([tuple(args.compare)] if args.compare else [])
    items = regions_of(Config.fromfile(args.config), args.num_images)
    results = {}
    for config, checkpoint in runs:
        name = osp.splitext(osp.basename(config))[0]
        print(f'{name}: Grad-CAM of {len(items)} images')
        results[name] = score_model(
            Config.fromfile(config), checkpoint, items, args.target_layers, args.base,
            args.threshold)
    print(f'\nsfd (base {args.base:g}, threshold {args.threshold:g}), mean ± sd over images:')
    for name, layers in results.items():
        for layer, r in layers.items():
            s = r['scores']
            spread = f' ± {statistics.stdev(s):.3f}' if len(s) > 1 else ''
            print(f'  {name:<40} {layer:<16} {statistics.mean(s):.3f}{spread}  (n={len(s)}'
                  f'{", undefined: " + str(r["undefined"]) if r["undefined"] else ""})'
                  if s else f'  {name:<40} {layer:<16} undefined on every image')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(base=args.base, threshold=args.threshold, results=results), f)
    return 0


if __name__ == '__main__':
    sys.exit(main())
