"""Fixtures shared by the test files: registry scopes and the synthetic data sets, each made
once per session (tests read them and never change them; a test that must change data copies
it)."""
import os

import pytest
import torch
from mmengine.registry import DefaultScope

from mmdas.datasets import make_shapes_coco, make_shapes_folder, make_shapes_seg


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: trains, starts processes or exports full-width models; left out of '
        'make test-fast and of make test\'s second pass')
    config.addinivalue_line(
        'markers', 'full_width: a shipped full-width detector config exported whole (also slow; '
        'under another CPU\'s rounding, scalar kernels take minutes each)')
    if os.environ.get('PYTEST_XDIST_WORKER'):
        # one thread per worker (pytest -n 2 on two cores), and for the processes it starts
        os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = '1'
        torch.set_num_threads(1)


def _memoized_format_code(format_code):
    """yapf's ``FormatCode`` remembering its last results: mmengine formats each runner's
    config several times (``dump_config``, the visualizer's ``add_config``, the log), about a
    second each here. The text written is the same."""
    results = {}

    def memoized(text, style_config=None, **kwargs):
        key = (text, repr(style_config), repr(sorted(kwargs.items())))
        if key not in results:
            if len(results) > 64:
                results.clear()
            results[key] = format_code(text, style_config=style_config, **kwargs)
        return results[key]

    return memoized


def pytest_sessionstart(session):
    import mmengine.config.config as mmengine_config
    mmengine_config.FormatCode = _memoized_format_code(mmengine_config.FormatCode)


def pytest_collection_modifyitems(config, items):
    """The slow tests first (the order is otherwise kept): with two workers, a long test
    started last would leave the other worker idle at the end of the run."""
    items.sort(key=lambda item: item.get_closest_marker('slow') is None)


def pytest_report_header(config):
    """Which CPU kernels compute the numbers (``make test`` runs the numeric tests twice)."""
    limit = os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')
    return (f'PyTorch CPU kernels: {torch.backends.cpu.get_cpu_capability()}; '
            f'ONEDNN_MAX_CPU_ISA: {limit}')


@pytest.fixture
def scope():
    """``with scope('mmdet'):`` builds from that framework's registry, whatever ran before."""
    return DefaultScope.overwrite_default_scope


@pytest.fixture(scope='session')
def coco_shapes(tmp_path_factory) -> str:
    """A COCO-format detection set: 16 train / 8 val / 8 test images of 96 px."""
    root = str(tmp_path_factory.mktemp('coco_shapes'))
    make_shapes_coco(root, num_train=16, num_val=8, num_test=8, size=96)
    return root


def _folder_set(tmp_path_factory, name: str, **sizes) -> str:
    root = str(tmp_path_factory.mktemp(name))
    make_shapes_folder(root, num_train_per_class=8, **sizes)
    return root


@pytest.fixture(scope='session')
def cls_shapes(tmp_path_factory) -> str:
    """An mmpretrain folder set: 8 train / 4 val / 4 test images per class, 32 px."""
    return _folder_set(
        tmp_path_factory, 'cls_shapes', num_val_per_class=4, num_test_per_class=4, size=32)


@pytest.fixture(scope='session')
def cls_shapes_64(tmp_path_factory) -> str:
    """An mmpretrain folder set at 64 px (stage 4 still has a 2x2 map): 8 train / 8 val / 8 test
    images per class, the test images the classification demo draws included."""
    return _folder_set(
        tmp_path_factory, 'cls_shapes_64', num_val_per_class=8, num_test_per_class=8, size=64)


@pytest.fixture(scope='session')
def seg_shapes(tmp_path_factory) -> str:
    """An mmseg set: 4 train / 2 val images of 64 px with label maps."""
    root = str(tmp_path_factory.mktemp('seg_shapes'))
    make_shapes_seg(root, num_train=4, num_val=2, size=64)
    return root
