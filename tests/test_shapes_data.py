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

from mmdas.datasets import MIN_VISIBLE_PIXELS, make_shapes_coco, make_shapes_folder, read_manifest
from mmdas.datasets.synthetic_shapes import _image


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


def test_a_folder_with_another_set_stops_the_demo(tmp_path):
    from mmdas.demos import ensure_shapes_data
    root = str(tmp_path / 'shapes')
    os.makedirs(osp.join(root, 'train'))
    open(osp.join(root, 'train', 'old.jpg'), 'w').close()  # an older generator's set
    with pytest.raises(RuntimeError, match=r'no shapes.json.*rm -r'):
        ensure_shapes_data('classification', root)
    empty = str(tmp_path / 'new')
    make_shapes_folder(
        empty, num_train_per_class=1, num_val_per_class=1, num_test_per_class=1, size=32)
    ensure_shapes_data('classification', empty)  # written by this generator: reused
    with pytest.raises(RuntimeError, match="task 'classification'"):
        ensure_shapes_data('detection', empty)
    with pytest.raises(ValueError, match='task must be one of'):
        ensure_shapes_data('segmentation', empty)


def test_the_harder_set_draws_outlines_under_a_smaller_shape(tmp_path):
    from mmdas.demos import HARD_CLS, ensure_shapes_data
    root = str(tmp_path / 'hard')
    make_shapes_folder(
        root,
        num_train_per_class=2,
        num_val_per_class=1,
        num_test_per_class=1,
        name='classification-hard',
        **HARD_CLS)
    manifest = read_manifest(root)
    assert manifest['task'] == 'classification-hard'
    assert (manifest['object_scale'], manifest['distractors']) == ([0.25, 0.5], 2)
    for name in ('cross', 'disc', 'square', 'triangle'):
        image = cv2.imread(osp.join(root, 'train', name, '00000.png'))
        mask = cv2.imread(osp.join(root, 'masks', 'train', name, '00000.png'), 0)
        # the class's shape is drawn last, in one colour, at most half the side
        assert len(np.unique(image[mask > 0].reshape(-1, 3), axis=0)) == 1
        ys, xs = np.nonzero(mask)
        assert max(ys.ptp(), xs.ptp()) + 1 <= 32
    ensure_shapes_data('classification-hard', root)  # reused
    with pytest.raises(RuntimeError, match="task 'classification-hard'"):
        ensure_shapes_data('classification', root)
    # the demo's set keeps the manifest it always had (stage records hold it)
    plain = str(tmp_path / 'plain')
    make_shapes_folder(plain, num_train_per_class=1, num_val_per_class=1, num_test_per_class=1)
    assert 'distractors' not in read_manifest(plain)
    for bad, match in ((dict(object_scale=(0.5, 0.25)), 'object_scale'), (dict(distractors=-1),
                                                                          'distractors')):
        with pytest.raises(ValueError, match=match):
            make_shapes_folder(str(tmp_path / 'bad'), **bad)
