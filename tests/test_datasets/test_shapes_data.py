"""The synthetic sets annotate what can be seen: each detection annotation's mask, area and box
agree and cover visible pixels only; the classification masks are the shape's pixels; a folder
holding another set is never trained on silently."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mmdas.datasets import MIN_VISIBLE_PIXELS, make_shapes_coco, read_manifest
from mmdas.datasets.synthetic_shapes import _image
from utils import ROOT


@pytest.mark.parametrize('size', [96, 160])
def test_detection_annotations_are_the_visible_pixels(tmp_path, size):
    paths = make_shapes_coco(str(tmp_path), num_train=40, num_val=4, num_test=4, size=size)
    assert set(paths) == {'train', 'val', 'test'}
    names = {
        split: {image['file_name']
                for image in json.load(open(paths[split]))['images']}
        for split in paths
    }
    assert all(name.startswith(split) for split in names for name in names[split])
    data = json.load(open(paths['train']))
    by_image = {}
    for ann in data['annotations']:
        visible = mask_utils.decode(ann['segmentation']).astype(bool)
        rows, cols = np.nonzero(visible)
        # area is the pixel count; bbox the extent (x, y, w, h), counted here with NumPy
        assert ann['area'] == visible.sum() >= MIN_VISIBLE_PIXELS
        assert ann['bbox'] == [
            cols.min(),
            rows.min(),
            cols.max() - cols.min() + 1,
            rows.max() - rows.min() + 1
        ]
        by_image.setdefault(ann['image_id'], []).append(visible)
    for masks in by_image.values():  # an image's objects never share a pixel
        assert (np.sum(masks, 0) <= 1).all()
    assert len(data['annotations']) >= 2 * len(data['images'])


def test_every_drawn_shape_is_annotated_with_its_own_pixels():
    """Against the drawing itself (before JPEG): the instance map holds exactly the annotated
    objects, and each mask is where that shape's flat colour shows, nothing of another."""
    rng = np.random.default_rng(3)
    for image_id in range(60):
        img, anns, instances = _image(rng, 96, image_id, 1)
        assert sorted(np.unique(instances[instances > 0])) == list(range(1, len(anns) + 1))
        for k, ann in enumerate(anns, 1):
            visible = instances == k
            assert np.array_equal(visible, mask_utils.decode(ann['segmentation']).astype(bool))
            assert len(np.unique(img[visible].reshape(-1, 3), axis=0)) == 1


def test_classification_masks_are_the_shapes_pixels(cls_shapes_64):
    for split in ('train', 'val', 'test'):
        folder = osp.join(cls_shapes_64, split, 'triangle')
        for name in sorted(os.listdir(folder))[:4]:
            image = cv2.imread(osp.join(folder, name))
            mask = cv2.imread(osp.join(cls_shapes_64, 'masks', split, 'triangle', name), 0)
            assert set(np.unique(mask)) == {0, 255}
            # the shape is drawn last in one colour: the mask is exactly where it shows
            assert len(np.unique(image[mask > 0].reshape(-1, 3), axis=0)) == 1
    assert read_manifest(cls_shapes_64)['num_test_per_class'] == 8


@pytest.mark.parametrize('config, length, schedule', [
    ('configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py', 50,
     dict(max_iters=50, val_interval=50)),
    ('configs/mmpretrain/demo/das-resnet18-w16_shapes-cls.py', 4, dict(
        max_epochs=4, val_interval=4)),
])
def test_shapes_cfg_points_everything_at_the_data_root(config, length, schedule):
    from mmdas.datasets import shapes_cfg
    cfg = shapes_cfg(osp.join(ROOT, config), '/data/x', seed=3, length=length)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.data_root == '/data/x/'
    assert cfg.randomness.seed == 3 and cfg.default_hooks.checkpoint.interval == length
    assert {k: cfg.train_cfg[k] for k in schedule} == schedule
    if 'max_iters' in schedule:  # detection: step decay at 80 %, COCO annotations moved too
        assert (cfg.param_scheduler[1].end, cfg.param_scheduler[1].milestones) == (50, [40])
        assert cfg.param_scheduler[0].end == 50  # the linear warm-up keeps its length
        assert cfg.val_evaluator.ann_file == '/data/x/annotations/instances_val.json'
        assert cfg.test_evaluator.ann_file == '/data/x/annotations/instances_test.json'
        assert (cfg.val_dataloader.dataset.data_prefix.img,
                cfg.test_dataloader.dataset.data_prefix.img) == ('val/', 'test/')
    else:  # classification: cosine over the run
        assert cfg.param_scheduler.T_max == length
        assert (cfg.val_dataloader.dataset.data_prefix,
                cfg.test_dataloader.dataset.data_prefix) == ('val', 'test')
    with pytest.raises(ValueError, match='length'):
        shapes_cfg(cfg, '/data/x', seed=0, length=0)
