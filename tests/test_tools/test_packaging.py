"""mmdas installed as a wheel (not -e), used from outside the checkout as an OpenMMLab user
does: ``mmdas::`` configs, ``mim train`` / ``mim test``; the model index; the version ranges."""
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from mmdas.version import FRAMEWORKS
from utils import ROOT

MIM = osp.join(osp.dirname(sys.executable), 'mim')


def checkout_files():
    """The files a clean clone has (tracked, plus new ones git does not ignore)."""
    try:
        out = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'],
                             cwd=ROOT,
                             check=True,
                             capture_output=True,
                             text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip('not a git checkout')
    return [f for f in out.splitlines() if osp.isfile(osp.join(ROOT, f))]


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    """A wheel built from a copy of the checkout, installed with pip into a target folder."""
    root = tmp_path_factory.mktemp('packaging')
    src = root / 'src'
    for name in checkout_files():
        os.makedirs(osp.dirname(src / name), exist_ok=True)
        shutil.copy2(osp.join(ROOT, name), src / name)
    pip = [sys.executable, '-m', 'pip', '-q']
    subprocess.run(
        pip + ['wheel', '--no-deps', '--no-build-isolation',
               str(src), '-w',
               str(root / 'wheels')],
        check=True,
        capture_output=True)
    wheel = glob.glob(str(root / 'wheels' / 'mmdas-*.whl'))[0]
    subprocess.run(
        pip + ['install', '--no-deps', '--target',
               str(root / 'site'), wheel],
        check=True,
        capture_output=True)
    return str(root / 'site')


def user_run(args, cwd, site, timeout=600):
    """A command in a directory outside the checkout, seeing the installed wheel first."""
    env = dict(os.environ, PYTHONPATH=site, CUDA_VISIBLE_DEVICES='-1')
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_the_wheel_carries_configs_tools_and_the_model_index(site):
    mim = osp.join(site, 'mmdas', '.mim')
    for path in ('configs/das/faster-rcnn_das-r50_fpn_1x_coco.py', 'configs/gates/metafile.yml',
                 'tools/train.py', 'tools/test.py', 'model-index.yml'):
        assert osp.isfile(osp.join(mim, path)) and not osp.islink(osp.join(mim, path)), path
    # the experiment bench stays in the checkout
    assert not glob.glob(osp.join(site, '*bench*')) and not glob.glob(osp.join(site, 'projects'))


#: What mmdas may import besides itself and the standard library: its dependencies.
DEPENDENCIES = {
    'torch', 'torchvision', 'numpy', 'cv2', 'mmcv', 'mmengine', 'mmdet', 'mmpretrain', 'mmseg',
    'pycocotools', 'matplotlib', 'onnx', 'onnxruntime', 'pytorch_grad_cam', 'packaging'
}
#: The runtime written beside an exported file runs without torch, OpenMMLab or mmdas.
RUNTIME_DEPENDENCIES = {'numpy', 'cv2', 'onnxruntime'}


def imported_modules(path: str):
    import ast
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split('.')[0]


def test_the_package_imports_only_itself_and_its_dependencies_and_nothing_by_path():
    stdlib = set(sys.stdlib_module_names)
    for path in glob.glob(osp.join(ROOT, 'mmdas', '**', '*.py'), recursive=True):
        modules = set(imported_modules(path))
        allowed = RUNTIME_DEPENDENCIES if path.endswith('onnx_infer.py') else \
            DEPENDENCIES | {'mmdas'}
        assert modules - stdlib - allowed == set(), path
        text = open(path).read()
        assert not {'runpy', 'spec_from_file_location', 'sys.path'} & set(
            re.findall(r'runpy|spec_from_file_location|sys\.path', text)), path


@pytest.mark.slow
def test_an_mmdas_base_resolves_in_a_users_config(site, tmp_path):
    (tmp_path / 'my_detector.py').write_text(
        "_base_ = 'mmdas::das/faster-rcnn_das-r50_fpn_1x_coco.py'\n"
        "model = dict(backbone=dict(gate=dict(alpha=0.25)))\n")
    proc = user_run([
        sys.executable, '-c',
        ('import mmdas; from mmengine.config import Config; '
         "cfg = Config.fromfile('my_detector.py'); "
         'print(mmdas.__file__, cfg.model.backbone.type, cfg.model.backbone.gate)')
    ], tmp_path, site)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(osp.join(site, 'mmdas', '__init__.py'))
    assert "DASResNet {'type': 'DASGate', 'alpha': 0.25}" in proc.stdout


@pytest.mark.slow
def test_mim_train_and_mim_test_from_outside_the_checkout(site, tmp_path, cls_shapes):
    data = cls_shapes
    (tmp_path / 'my_classifier.py').write_text(
        "_base_ = 'mmdas::mmpretrain/demo/das-resnet18-w16_shapes-cls.py'\n"
        f"data_root = '{data}'\n"
        'train_dataloader = dict(batch_size=8, dataset=dict(data_root=data_root))\n'
        'val_dataloader = dict(dataset=dict(data_root=data_root))\n'
        'test_dataloader = val_dataloader\n'
        'train_cfg = dict(max_epochs=1, val_interval=1)\n'
        'param_scheduler = dict(T_max=1, end=1)\n'
        'default_hooks = dict(checkpoint=dict(interval=1))\n')
    proc = user_run([MIM, 'train', 'mmdas', 'my_classifier.py', '--work-dir', 'work'], tmp_path,
                    site)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert osp.join(site, 'mmdas', '.mim', 'tools', 'train.py') in proc.stdout  # the wheel's
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')
    proc = user_run([
        MIM, 'test', 'mmdas', 'my_classifier.py', '--checkpoint', 'work/epoch_1.pth', '--work-dir',
        'test'
    ], tmp_path, site)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'accuracy/top1' in proc.stdout + proc.stderr


def configs_in_tree():
    return sorted(
        p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
        if '_base_' not in p)


def test_the_model_index_lists_every_config_and_only_existing_ones():
    index = yaml.safe_load(open(osp.join(ROOT, 'model-index.yml')))
    listed, names = [], []
    for metafile in index['Import']:
        meta = yaml.safe_load(open(osp.join(ROOT, metafile)))
        collections = {c['Name'] for c in meta['Collections']}
        for model in meta['Models']:
            assert model['In Collection'] in collections, model['Name']
            assert osp.isfile(osp.join(ROOT, model['Config'])), model['Config']
            assert model['Name'] == osp.splitext(osp.basename(model['Config']))[0]
            # a Results entry belongs to a released checkpoint (Weights) that produced it
            assert 'Results' not in model or model.get('Weights'), model['Name']
            listed.append(osp.join(ROOT, model['Config']))
            names.append(model['Name'])
    assert len(names) == len(set(names))
    assert sorted(listed) == configs_in_tree()
    for folder in ('das', 'mmpretrain', 'gates', 'mmseg'):
        assert osp.isfile(osp.join(ROOT, 'configs', folder, 'README.md')), folder


def test_pinned_versions_lie_in_the_ranges_mmdas_checks():
    from mmengine.utils import digit_version
    pins = {}
    for path in glob.glob(osp.join(ROOT, 'requirements', '*.txt')):
        for line in open(path):
            match = re.match(r'^([A-Za-z0-9_.-]+)==([0-9.]+)', line.strip())
            if match:
                pins[match.group(1).lower()] = match.group(2)
    pins['mmcv'] = re.search(r'MMCV_VERSION := ([0-9.]+)',
                             open(osp.join(ROOT, 'Makefile')).read()).group(1)
    for name, (_, low, high, _) in FRAMEWORKS.items():
        assert digit_version(low) <= digit_version(pins[name]) < digit_version(high), name
