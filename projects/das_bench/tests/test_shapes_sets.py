"""The bench's synthetic sets: a folder holding another set is never trained on silently, and
the harder classification set of the controls draws what its manifest says."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mmdas.datasets import make_shapes_folder, read_manifest


def test_a_folder_with_another_set_stops_the_demo(tmp_path):
    from das_bench import ensure_shapes_data
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
    from das_bench import HARD_CLS, ensure_shapes_data
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
