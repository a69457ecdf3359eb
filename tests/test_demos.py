"""`make demo` and `make demo-cls` as a newcomer sees them, at a tiny scale: a quiet console (one
progress bar per stage), a closing table, a picture, the time taken; full logs on disk."""
import glob
import os.path as osp

import pytest

from utils import ROOT, run_tool


def test_detection_demo_over_two_seeds(tmp_path, coco_shapes):
    data = coco_shapes
    work = str(tmp_path / 'demo')
    proc = run_tool('tools/demo.py', [
        '--data-root', data, '--work-dir', work, '--base-iters', '2', '--warmup-iters', '1',
        '--finetune-iters', '2', '--pictures', '2', '--seeds', '0', '1'
    ])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    # one titled bar per stage: 7 per seed
    assert out.count('[14/14] seed 1: vanilla COCO evaluation') == 1
    assert 'Config:' not in out and 'mmengine - INFO' not in out  # the logs stay on disk
    assert 'mean ± sd over seeds [0, 1]' in out and 'bbox_mAP per seed' in out
    assert 'picture of detections' in out and 'done in' in out.splitlines()[-1]
    for seed in (0, 1):
        assert osp.getsize(osp.join(work, f'seed{seed}', 'detections.png')) > 10_000
    logs = glob.glob(osp.join(work, '**', '*.log'), recursive=True)
    assert any('Config:' in open(path).read() for path in logs)  # mmengine's full log


def test_classification_demo_with_its_plain_twin(tmp_path, cls_shapes_64):
    work = str(tmp_path / 'demo_cls')
    proc = run_tool('tools/demo_cls.py', ['--data-root', cls_shapes_64, '--work-dir', work])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert '[2/2] plain, seed 0: training' in out and 'Config:' not in out
    assert 'das ' in out and 'plain ' in out and '(chance 25 %)' in out
    pictures = glob.glob(osp.join(work, 'attention', '*.png'))
    assert len(pictures) == 4


@pytest.mark.parametrize('config, length, schedule', [
    ('configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py', 50,
     dict(max_iters=50, val_interval=50)),
    ('configs/mmpretrain/demo/das-resnet18-w16_shapes-cls.py', 4, dict(
        max_epochs=4, val_interval=4)),
])
def test_shapes_cfg_points_everything_at_the_data_root(config, length, schedule):
    from mmdas.demos import shapes_cfg
    cfg = shapes_cfg(osp.join(ROOT, config), '/data/x', seed=3, length=length)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.data_root == '/data/x/'
    assert cfg.randomness.seed == 3 and cfg.default_hooks.checkpoint.interval == length
    assert {k: cfg.train_cfg[k] for k in schedule} == schedule
    if 'max_iters' in schedule:  # detection: step decay at 80 %, COCO annotations moved too
        assert (cfg.param_scheduler[1].end, cfg.param_scheduler[1].milestones) == (50, [40])
        assert cfg.val_evaluator.ann_file == '/data/x/annotations/instances_val.json'
        assert cfg.test_evaluator.ann_file == cfg.val_evaluator.ann_file
    else:  # classification: cosine over the run
        assert cfg.param_scheduler.T_max == length
    with pytest.raises(ValueError, match='length'):
        shapes_cfg(cfg, '/data/x', seed=0, length=0)
