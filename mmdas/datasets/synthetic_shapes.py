"""Small synthetic data sets written to disk (no download needed): detection in COCO format
(with instance masks), classification in mmpretrain's folder layout (with object masks), and
semantic segmentation in mmsegmentation's layout.

Detection and classification sets have train, val and test splits (choose on val, report
test). Images show filled shapes of four classes (square, disc, triangle, cross) in random colours,
sizes (about 12 % to 45 % of the image side) and positions, over a cluttered background
(colour gradient, noise, random line segments, distractor outlines). Every shape is also drawn
into a mask, so each object's pixels are known exactly (the relevant region of the sfd score,
the labels of the segmentation set). Used by the demos and the tests; real COCO goes under
``data/coco/`` with the same configs.
"""
import copy
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple, Union

import cv2
import numpy as np
from mmengine.config import Config
from pycocotools import mask as mask_utils

CLASSES = ('square', 'disc', 'triangle', 'cross')
#: A shape is drawn only where it leaves each earlier shape at least this fraction of its pixels.
MIN_VISIBLE_FRACTION = 0.5
#: A shape with fewer pixels than this is not drawn (too small to be found at these sizes).
MIN_VISIBLE_PIXELS = 16
#: Bumped whenever the generator draws different data for the same arguments.
GENERATOR_VERSION = 2
MANIFEST = 'shapes.json'


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, size)[:, None, None]
    img = (c0 * (1 - t) + c1 * t) * np.ones((size, size, 1))
    img += rng.normal(0, 12, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(3, 9)):  # clutter: thin lines and hollow outlines
        p0, p1 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.6:
            cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), colour, 1)
        else:
            cv2.circle(img, tuple(int(v) for v in p0), int(rng.integers(4, size // 4)), colour, 1)
    return img


def _draw(img: np.ndarray, label: int, x: int, y: int, s: int, colour) -> None:
    if label == 0:
        cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), colour, -1)
    elif label == 1:
        cv2.circle(img, (x + s // 2, y + s // 2), s // 2, colour, -1)
    elif label == 2:
        pts = np.array([[x + s // 2, y], [x, y + s - 1], [x + s - 1, y + s - 1]], np.int32)
        cv2.fillPoly(img, [pts], colour)
    else:
        w = max(2, s // 4)
        cv2.rectangle(img, (x + (s - w) // 2, y), (x + (s + w) // 2, y + s - 1), colour, -1)
        cv2.rectangle(img, (x, y + (s - w) // 2), (x + s - 1, y + (s + w) // 2), colour, -1)


def _shape_mask(label: int, x: int, y: int, s: int, size: int) -> np.ndarray:
    """The pixels :func:`_draw` paints for this shape, as a boolean map."""
    mask = np.zeros((size, size), np.uint8)
    _draw(mask, label, x, y, s, 1)
    return mask.astype(bool)


def _least_visible(drawn: int) -> float:
    """How many of an object's ``drawn`` pixels must stay visible."""
    return max(MIN_VISIBLE_FRACTION * drawn, MIN_VISIBLE_PIXELS)


def _image(rng: np.random.Generator, size: int, image_id: int, start_ann_id: int):
    """An image, its COCO annotations and its instance map (0 background, k = k-th object).

    A shape is drawn only where its box overlaps no earlier one by more than IoU 0.3 and where
    it leaves every earlier shape at least :data:`MIN_VISIBLE_FRACTION` of its pixels and
    :data:`MIN_VISIBLE_PIXELS` pixels, so every object in the picture can be seen and is
    annotated, and nothing annotated is hidden. Each annotation describes what is
    visible: ``segmentation`` the visible pixels (COCO RLE), ``area`` their count, ``bbox``
    their extent (pycocotools' ``area`` and ``toBbox`` of that RLE).
    """
    img = _background(rng, size)
    instances = np.zeros((size, size), np.uint8)
    labels: List[int] = []
    drawn: List[int] = []  # each object's pixel count as drawn, before later shapes
    boxes: List[np.ndarray] = []
    for _ in range(int(rng.integers(2, 8))):
        s = int(rng.integers(int(size * 0.12), int(size * 0.45)))
        x, y = (int(v) for v in rng.integers(0, size - s, 2))
        box = np.array([x, y, x + s, y + s], float)
        if any(_iou(box, b) > 0.3 for b in boxes):
            continue
        label = int(rng.integers(0, len(CLASSES)))
        mask = _shape_mask(label, x, y, s, size)
        if mask.sum() < MIN_VISIBLE_PIXELS or any(
                np.count_nonzero((instances == k) & ~mask) < _least_visible(drawn[k - 1])
                for k in range(1,
                               len(labels) + 1)):
            continue
        _draw(img, label, x, y, s, _contrasting_colour(rng, img[y:y + s, x:x + s]))
        instances[mask] = len(labels) + 1  # later shapes cover earlier ones
        labels.append(label)
        drawn.append(int(mask.sum()))
        boxes.append(box)
    anns: List[Dict] = []
    for k, label in enumerate(labels, 1):
        rle = mask_utils.encode(np.asfortranarray(instances == k))
        anns.append(
            dict(
                id=start_ann_id + k - 1,
                image_id=image_id,
                category_id=label + 1,
                bbox=[float(v) for v in mask_utils.toBbox(rle)],
                area=float(mask_utils.area(rle)),
                segmentation=dict(size=rle['size'], counts=rle['counts'].decode()),
                iscrowd=0))
    return img, anns, instances


def _contrasting_colour(rng: np.random.Generator, patch: np.ndarray) -> tuple:
    """A random colour at least 120 (L1 over BGR) away from the patch's mean colour, so that
    every object is visible (a colour close to its background would be label noise)."""
    mean = patch.reshape(-1, 3).mean(0)
    while True:
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - mean).sum() >= 120:
            return tuple(int(v) for v in colour)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _write_manifest(root: str, task: str, **arguments) -> Dict:
    """Write ``root/shapes.json`` (what wrote the set: generator version, task, arguments) last,
    so a set without one is incomplete or another generator's."""
    manifest = dict(generator=GENERATOR_VERSION, task=task, **arguments)
    with open(osp.join(root, MANIFEST), 'w') as f:
        json.dump(manifest, f, indent=1)
    return manifest


def read_manifest(root: str) -> Optional[Dict]:
    """The manifest of the set at ``root``, or None where there is none."""
    path = osp.join(root, MANIFEST)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def make_shapes_coco(root: str,
                     num_train: int = 400,
                     num_val: int = 100,
                     num_test: int = 100,
                     size: int = 160,
                     seed: int = 0) -> Dict[str, str]:
    """Write ``root/{train,val,test}/*.jpg``, ``root/annotations/instances_<split>.json`` and
    ``root/shapes.json``.

    Returns the annotation paths by split. Re-running with the same arguments rewrites the same
    set; the three splits never share an image (one random stream, drawn in turn).
    """
    rng = np.random.default_rng(seed)
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    paths = {}
    ann_id = 1
    for split, count in (('train', num_train), ('val', num_val), ('test', num_test)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            image_id = len(images) + 1
            img, anns, _ = _image(rng, size, image_id, ann_id)
            name = f'{split}_{i:05d}.jpg'
            cv2.imwrite(osp.join(root, split, name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            images.append(dict(id=image_id, file_name=name, width=size, height=size))
            annotations += anns
            ann_id += len(anns)
        path = osp.join(root, 'annotations', f'instances_{split}.json')
        with open(path, 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
        paths[split] = path
    _write_manifest(
        root,
        'detection',
        num_train=num_train,
        num_val=num_val,
        num_test=num_test,
        size=size,
        seed=seed)
    return paths


def make_shapes_folder(root: str,
                       num_train_per_class: int = 500,
                       num_val_per_class: int = 100,
                       num_test_per_class: int = 100,
                       size: int = 64,
                       seed: int = 0,
                       object_scale: Tuple[float, float] = (0.3, 0.7),
                       distractors: int = 0,
                       name: str = 'classification') -> None:
    """Write ``root/{train,val,test}/<class>/*.png``: one filled shape per image, its side a
    random fraction in ``object_scale`` of the image side, over a cluttered background and,
    under it, ``distractors`` outlines (the one-pixel border of a shape of a random class, the
    same sizes): the class is the filled shape's. The shape's mask (255 on its pixels, all
    visible: nothing is drawn over it) goes to ``root/masks/<split>/<class>/*.png``, the
    arguments to ``root/shapes.json`` (``task`` = ``name``). The defaults draw what generator 2
    always drew (no distractor consumes random numbers)."""
    low, high = object_scale
    if not 0 < low < high < 1:
        raise ValueError(f'object_scale must be (low, high) with 0 < low < high < 1, got '
                         f'{object_scale!r}')
    if distractors < 0:
        raise ValueError(f'distractors must be >= 0, got {distractors!r}')
    rng = np.random.default_rng(seed)
    for split, count in (('train', num_train_per_class), ('val', num_val_per_class),
                         ('test', num_test_per_class)):
        for label, class_name in enumerate(CLASSES):
            folder = osp.join(root, split, class_name)
            mask_folder = osp.join(root, 'masks', split, class_name)
            os.makedirs(folder, exist_ok=True)
            os.makedirs(mask_folder, exist_ok=True)
            for i in range(count):
                img = _background(rng, size)
                for _ in range(distractors):
                    s = int(rng.integers(int(size * low), int(size * high)))
                    x, y = (int(v) for v in rng.integers(0, size - s, 2))
                    other = int(rng.integers(0, len(CLASSES)))
                    shape = _shape_mask(other, x, y, s, size)
                    border = shape & ~cv2.erode(shape.astype(np.uint8), np.ones(
                        (3, 3), np.uint8)).astype(bool)
                    img[border] = _contrasting_colour(rng, img[y:y + s, x:x + s])
                s = int(rng.integers(int(size * low), int(size * high)))
                x, y = (int(v) for v in rng.integers(0, size - s, 2))
                _draw(img, label, x, y, s, _contrasting_colour(rng, img[y:y + s, x:x + s]))
                mask = _shape_mask(label, x, y, s, size).astype(np.uint8) * 255
                cv2.imwrite(osp.join(folder, f'{i:05d}.png'), img)
                cv2.imwrite(osp.join(mask_folder, f'{i:05d}.png'), mask)
    _write_manifest(
        root,
        name,
        num_train_per_class=num_train_per_class,
        num_val_per_class=num_val_per_class,
        num_test_per_class=num_test_per_class,
        size=size,
        seed=seed,
        # only where they differ from generator 2's drawing, so its sets' manifests stay as
        # they were (a stage record holds its data's manifest)
        **({} if (tuple(object_scale), distractors) == ((0.3, 0.7), 0) else dict(
            object_scale=list(object_scale), distractors=distractors)))


def shape_mask_path(image_path: str) -> str:
    """The mask written beside an image of :func:`make_shapes_folder`:
    ``root/<split>/<class>/x.png`` -> ``root/masks/<split>/<class>/x.png``."""
    folder, name = osp.split(image_path)
    class_dir, class_name = osp.split(folder)
    root, split = osp.split(class_dir)
    return osp.join(root, 'masks', split, class_name, name)


def make_shapes_seg(root: str,
                    num_train: int = 400,
                    num_val: int = 100,
                    size: int = 160,
                    seed: int = 0) -> None:
    """Write mmsegmentation's layout: ``root/img_dir/{train,val}/*.jpg`` and
    ``root/ann_dir/{train,val}/*.png`` with label 0 for background, k for ``CLASSES[k - 1]``."""
    rng = np.random.default_rng(seed)
    for split, count in (('train', num_train), ('val', num_val)):
        os.makedirs(osp.join(root, 'img_dir', split), exist_ok=True)
        os.makedirs(osp.join(root, 'ann_dir', split), exist_ok=True)
        for i in range(count):
            img, anns, instances = _image(rng, size, i + 1, 1)
            labels = np.zeros_like(instances)
            for k, ann in enumerate(anns, 1):
                labels[instances == k] = ann['category_id']
            cv2.imwrite(
                osp.join(root, 'img_dir', split, f'{i:05d}.jpg'), img,
                [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(root, 'ann_dir', split, f'{i:05d}.png'), labels)


def shapes_cfg(cfg: Union[str, Config],
               data_root: str,
               seed: int,
               length: Optional[int] = None) -> Config:
    """``cfg`` (a path or a Config, never changed) reading ``data_root`` (its three dataloaders
    and, for COCO, its evaluators' annotation files), seeded with ``seed``. The set's manifest
    (``shapes.json``: generator version and sizes) goes into the config as ``shapes_data``, so a
    stage trained on other data is never reused (:func:`mmdas.engine.run_stage`).

    With ``length``, the schedule is shortened or lengthened: to ``length`` iterations for an
    iteration-based config (the detection demo: step decay at 80 %; its linear learning-rate
    warm-up keeps its 50 iterations), ``length`` epochs for an epoch-based one (the
    classification demo: cosine over the run); one validation and one checkpoint at its end.
    """
    cfg = Config.fromfile(cfg) if isinstance(cfg, str) else copy.deepcopy(cfg)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = osp.join(data_root, '')
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        if isinstance(evaluator, dict) and 'ann_file' in evaluator:
            ann_file = osp.basename(evaluator.ann_file)
            evaluator.ann_file = osp.join(data_root, 'annotations', ann_file)
    cfg.randomness = dict(seed=seed)
    manifest = read_manifest(data_root)
    if manifest is not None:
        cfg.shapes_data = manifest
    if length is None:
        return cfg
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f'length must be a positive number of iterations or epochs, got '
                         f'{length!r}')
    if 'max_iters' in cfg.train_cfg:
        cfg.train_cfg.update(max_iters=length, val_interval=length)
        cfg.param_scheduler[1].update(end=length, milestones=[int(length * 0.8)])
    else:
        cfg.train_cfg.update(max_epochs=length, val_interval=length)
        cfg.param_scheduler.update(T_max=length, end=length)
    cfg.default_hooks.checkpoint.interval = length
    return cfg
