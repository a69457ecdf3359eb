"""Our configs through the frameworks' own tools and ours, as a user runs them."""
import os
import os.path as osp
import re

import pytest
import torch

from utils import load_tool, run_main, run_tool

DET = 'configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py'
CLS = 'configs/mmpretrain/demo/das-resnet18-w16_shapes-cls.py'


def framework_tool(package: str, name: str) -> str:
    module = __import__(package)
    return osp.join(osp.dirname(module.__file__), '.mim', 'tools', name)


def run(args, timeout=600):
    """A tool that must succeed: its whole output. The framework's own tool runs as a user runs
    it, in a process of its own (our configs import mmdas themselves); ours in this one."""
    ours = args[0].startswith('tools/')
    proc = run_main(args[0], args[1:]) if ours else run_tool(args[0], args[1:], timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def det_opts(coco_shapes):
    root = coco_shapes
    return [
        '--cfg-options', f'train_dataloader.dataset.data_root={root}/',
        f'val_dataloader.dataset.data_root={root}/', f'test_dataloader.dataset.data_root={root}/',
        f'val_evaluator.ann_file={root}/annotations/instances_val.json',
        f'test_evaluator.ann_file={root}/annotations/instances_test.json',
        'train_dataloader.batch_size=2', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=1'
    ]


@pytest.mark.slow
@pytest.mark.parametrize('tools', ['mmdet', 'ours'])
def test_detection_train_and_test_tools_print_coco_ap(tools, det_opts, tmp_path):
    train = framework_tool('mmdet', 'train.py') if tools == 'mmdet' else 'tools/train.py'
    test = framework_tool('mmdet', 'test.py') if tools == 'mmdet' else 'tools/test.py'
    run([train, DET, '--work-dir', str(tmp_path)] + det_opts + ['train_cfg.max_iters=2'])
    log = run(
        [test, DET, str(tmp_path / 'iter_2.pth'), '--work-dir',
         str(tmp_path / 't')] + det_opts)
    # pycocotools' AP table, as printed by mmdet's CocoMetric
    assert 'Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]' in log
    assert 'coco/bbox_mAP' in log


@pytest.mark.slow
def test_our_train_tool_resumes_after_an_interruption(det_opts, tmp_path):
    opts = det_opts + ['default_hooks.checkpoint.max_keep_ckpts=-1']  # keep every checkpoint
    run(['tools/train.py', DET, '--work-dir', str(tmp_path)] + opts + ['train_cfg.max_iters=2'])
    first = {name: os.stat(tmp_path / name).st_mtime_ns for name in ('iter_1.pth', 'iter_2.pth')}
    run(['tools/train.py', DET, '--work-dir',
         str(tmp_path), '--resume'] + opts + ['train_cfg.max_iters=3'])
    assert torch.load(tmp_path / 'iter_3.pth')['meta']['iter'] == 3
    # resumed from iter_2: the first two iterations were not trained (and saved) again
    assert {name: os.stat(tmp_path / name).st_mtime_ns for name in first} == first


@pytest.mark.slow
@pytest.mark.parametrize('tools', ['mmpretrain', 'ours'])
def test_classification_train_and_test_tools_print_top1(tools, tmp_path, cls_shapes):
    root = cls_shapes
    opts = [
        '--cfg-options', f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1'
    ]
    train = framework_tool('mmpretrain', 'train.py') if tools == 'mmpretrain' else 'tools/train.py'
    test = framework_tool('mmpretrain', 'test.py') if tools == 'mmpretrain' else 'tools/test.py'
    run([train, CLS, '--work-dir', str(tmp_path / 'w')] + opts)
    log = run([test, CLS,
               str(tmp_path / 'w' / 'epoch_1.pth'), '--work-dir',
               str(tmp_path / 't')] + opts)
    assert 'accuracy/top1' in log


@pytest.mark.parametrize('package, config', [('mmdet', DET), ('mmpretrain', CLS)])
@pytest.mark.parametrize('name', ['train', 'test'])
def test_our_tools_take_every_flag_of_the_frameworks_own(package, config, name, capsys):
    """Every option that the installed framework's own tool declares (read from its file in
    ``.mim/tools``) is an option of ours, run in-process on a config of that framework."""
    source = open(framework_tool(package, f'{name}.py')).read()
    flags = set(re.findall(r"add_argument\(\s*'(--[\w-]+)'", source))
    assert {'--work-dir', '--cfg-options', '--launcher'} <= flags
    with pytest.raises(SystemExit) as done:
        load_tool(f'tools/{name}.py').main([config] + (['x.pth'] if name == 'test' else []) +
                                           ['--help'])
    assert done.value.code == 0
    usage = capsys.readouterr().out
    assert sorted(flag for flag in flags if flag not in usage) == []
