"""Draw where a model looks: each DAS gate's map and Grad-CAM at the end of stages 3 and 4.

    python tools/analysis/visualize_attention.py CONFIG CHECKPOINT IMAGES...
        [--compare CONFIG2 CHECKPOINT2] [--out DIR] [--target-layers NAME ...]
        [--sfd-base 10] [--sfd-threshold 0.5]

For an mmpretrain classifier Grad-CAM explains the predicted class; for an mmdet two-stage
detector, its top-scoring detection (its box is drawn). Per image one PNG in DIR: the input,
the gates' attention (mean over channels, upsampled and overlaid; a plain model has none), and
the Grad-CAMs; with --compare a second row for the other model (e.g. the plain twin).
IMAGES are files or folders. An image that cannot be read is named and skipped. Where the
image is one of the synthetic demo set's, its object mask is known and each Grad-CAM panel
shows its sfd score (mmdas.analysis.sfd_score: anti-log scaled CAM mass on the object over the
mass on the object and on salient pixels elsewhere, see --sfd-base/--sfd-threshold).
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import cv2
import numpy as np
from mmengine.config import Config
from mmengine.utils import ProgressBar

import mmdas  # noqa: F401
from mmdas.analysis import (DEFAULT_BASE, DEFAULT_THRESHOLD, UndefinedScore, explain, prepare_image,
                            sfd_score, stage_end_layers)
from mmdas.apis import init_model
from mmdas.datasets import is_unreadable_image, shape_mask_path

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def image_paths(items: List[str]) -> List[str]:
    paths = []
    for item in items:
        if osp.isdir(item):
            paths += sorted(
                osp.join(item, n) for n in os.listdir(item) if n.lower().endswith(IMAGE_SUFFIXES))
        else:
            paths.append(item)
    return paths


def class_names(cfg: Config) -> Optional[List[str]]:
    dataset = cfg.test_dataloader.dataset
    names = dataset.get('classes') or (dataset.get('metainfo') or {}).get('classes')
    return list(names) if names else None


def object_region(path: str, shape) -> Optional[np.ndarray]:
    """The synthetic demo set's object mask for ``path``, resized to ``shape``; else None."""
    mask_path = shape_mask_path(path)
    mask = cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE) if osp.isfile(mask_path) else None
    if mask is None:
        return None
    return cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 127


def overlay(ax, rgb: np.ndarray, heat: Optional[np.ndarray], title: str, box=None) -> None:
    ax.imshow(rgb)
    if heat is not None:
        heat = cv2.resize(
            heat.astype(np.float32), (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        ax.imshow(heat, cmap='jet', alpha=0.45, vmin=0, vmax=1)
    if box is not None:
        x1, y1, x2, y2 = box
        ax.add_patch(
            __import__('matplotlib').patches.Rectangle((x1, y1),
                                                       x2 - x1,
                                                       y2 - y1,
                                                       fill=False,
                                                       color='white',
                                                       linewidth=1.5))
    ax.set_title(title, fontsize=7)
    ax.axis('off')


def draw(rows, path: str, names, region, base: float, threshold: float) -> None:
    """``rows``: (model label, PreparedImage, Explanation) per model."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    gates = max(len(e.gates) for _, _, e in rows)
    cams = max(len(e.cams) for _, _, e in rows)
    cols = 1 + gates + cams
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols, 2.4 * len(rows)), squeeze=False)
    for r, (label, image, exp) in enumerate(rows):
        cls = names[exp.label] if names and exp.label < len(names) else str(exp.label)
        overlay(axes[r][0], image.rgb, None, f'{label}\n{cls} ({exp.score:.2f})', exp.box)
        for g in range(gates):
            if g < len(exp.gates):
                name, amap = exp.gates[g]
                shown = (amap - amap.min()) / max(float(amap.max() - amap.min()), 1e-6)
                overlay(
                    axes[r][1 + g], image.rgb, shown,
                    f'gate {name.replace("backbone.", "")}\nA in [{amap.min():.2f}, '
                    f'{amap.max():.2f}]')
            else:
                axes[r][1 + g].axis('off')
                axes[r][1 + g].set_title('(no gate)', fontsize=7)
        for c, (layer, cam) in enumerate(exp.cams.items()):
            title = f'Grad-CAM {layer.replace("backbone.", "")}'
            if region is not None:
                try:
                    title += f'\nsfd {sfd_score(cam, region, base, threshold):.2f}'
                except UndefinedScore:
                    title += '\nsfd undefined (all-zero CAM)'
            overlay(axes[r][1 + gates + c], image.rgb, cam, title, exp.box)
    fig.suptitle(osp.basename(path), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('images', nargs='+', help='image files or folders')
    parser.add_argument(
        '--compare',
        nargs=2,
        metavar=('CONFIG2', 'CHECKPOINT2'),
        help='a second model drawn below (e.g. the plain twin)')
    parser.add_argument('--out', default='work_dirs/attention')
    parser.add_argument(
        '--target-layers',
        nargs='+',
        help='layers for Grad-CAM (default: the ends of the last two stages, '
        'backbone.layer3 backbone.layer4 for ResNets)')
    parser.add_argument(
        '--sfd-base', type=float, default=DEFAULT_BASE, help='anti-log base of the sfd score')
    parser.add_argument(
        '--sfd-threshold',
        type=float,
        default=DEFAULT_THRESHOLD,
        help='scaled CAM value from which a pixel off the object is salient')
    args = parser.parse_args(argv)
    models = [('model', args.config, args.checkpoint)]
    if args.compare:
        models.append(('compare', *args.compare))
    loaded = []
    for tag, config, checkpoint in models:
        cfg = Config.fromfile(config)
        model = init_model(cfg, checkpoint)
        layers = args.target_layers or stage_end_layers(model)
        label = osp.splitext(osp.basename(config))[0]
        loaded.append((label, cfg, model, layers))
    names = class_names(loaded[0][1])
    os.makedirs(args.out, exist_ok=True)
    paths = image_paths(args.images)
    skipped = []
    bar = ProgressBar(len(paths))
    for path in paths:
        try:
            rows = []
            for label, cfg, model, layers in loaded:
                image = prepare_image(cfg, model, path)
                rows.append((label, image, explain(model, image, layers)))
        except (OSError, AssertionError) as err:  # an unreadable image: named, the rest go on
            if not is_unreadable_image(err):
                raise
            skipped.append(f'{path}: {type(err).__name__}: {err}')
            bar.update()
            continue
        region = object_region(path, rows[0][1].rgb.shape)
        out = osp.join(args.out, osp.splitext(osp.basename(path))[0] + '.png')
        draw(rows, out, names, region, args.sfd_base, args.sfd_threshold)
        bar.update()
    print(f'\nwrote {len(paths) - len(skipped)} picture(s) to {args.out}')
    for line in skipped:
        print(f'skipped {line}', file=sys.stderr)
    return 1 if skipped else 0


if __name__ == '__main__':
    sys.exit(main())
