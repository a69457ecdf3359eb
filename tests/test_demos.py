"""`make demo` and `make demo-cls` as a newcomer sees them, at a tiny scale: a quiet console (one
progress bar per stage), a closing table, a picture, the time taken; full logs on disk."""
import glob
import os
import os.path as osp
import subprocess
import sys

from mmdas.datasets import make_shapes_coco, make_shapes_folder

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run(args):
    env = dict(os.environ, PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES='-1')
    return subprocess.run(
        [sys.executable] + args, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)


def test_detection_demo_over_two_seeds(tmp_path):
    data = str(tmp_path / 'shapes')
    make_shapes_coco(data, num_train=8, num_val=4, size=96)
    work = str(tmp_path / 'demo')
    proc = run([
        'tools/demo.py', '--data-root', data, '--work-dir', work, '--base-iters', '2',
        '--warmup-iters', '1', '--finetune-iters', '2', '--pictures', '2', '--seeds', '0', '1'
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


def test_classification_demo_with_its_plain_twin(tmp_path):
    data = str(tmp_path / 'shapes_cls')
    make_shapes_folder(data, num_train_per_class=8, num_val_per_class=8, size=64)
    work = str(tmp_path / 'demo_cls')
    proc = run(['tools/demo_cls.py', '--data-root', data, '--work-dir', work])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert '[2/2] plain, seed 0: training' in out and 'Config:' not in out
    assert 'das ' in out and 'plain ' in out and '(chance 25 %)' in out
    pictures = glob.glob(osp.join(work, 'attention', '*.png'))
    assert len(pictures) == 4


def test_shapes_demo_cfg_points_everything_at_the_data_root():
    import pytest

    from mmdas.engine import shapes_demo_cfg
    cfg = shapes_demo_cfg(
        osp.join(ROOT, 'configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py'),
        '/data/x',
        seed=3,
        iters=50)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.data_root == '/data/x/'
    assert cfg.val_evaluator.ann_file == '/data/x/annotations/instances_val.json'
    assert cfg.test_evaluator.ann_file == cfg.val_evaluator.ann_file
    assert cfg.randomness.seed == 3
    assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == (50, 50)
    assert (cfg.param_scheduler[1].end, cfg.param_scheduler[1].milestones) == (50, [40])
    assert cfg.default_hooks.checkpoint.interval == 50
    with pytest.raises(ValueError, match='iters'):
        shapes_demo_cfg(cfg, '/data/x', seed=0, iters=0)
