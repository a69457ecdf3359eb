"""`make demo` and `make demo-cls` as a newcomer sees them, at a tiny scale: a quiet console (one
progress bar per stage), a closing table, a picture, the time taken; full logs on disk."""
import glob
import json
import os.path as osp
import re

import pytest
import torch
from mmengine.runner import find_latest_checkpoint

from utils import ROOT, run_tool

CLS_DEMO_CONFIGS = ('configs/mmpretrain/demo/das-resnet18-w16_shapes-cls.py',
                    'configs/mmpretrain/demo/resnet18-w16_shapes-cls.py')


def test_detection_demo_over_two_seeds(tmp_path, coco_shapes, cls_shapes):
    work = str(tmp_path / 'demo')
    proc = run_tool('tools/demo.py', [
        '--data-root', coco_shapes, '--cls-data-root', cls_shapes, '--work-dir', work,
        '--pretrain-epochs', '1', '--base-iters', '2', '--warmup-iters', '1', '--finetune-iters',
        '2', '--pictures', '2', '--seeds', '0', '1'
    ])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    # one titled bar per stage: 8 per seed, the backbone's pretraining first
    assert '[9/16] seed 1: pretrain the backbone (plain classifier)' in out
    assert out.count('[16/16] seed 1: vanilla COCO evaluation (test)') == 1
    assert 'Config:' not in out and 'mmengine - INFO' not in out  # the logs stay on disk
    assert 'on the synthetic test split' in out and 'mean ± sd over seeds [0, 1]' in out
    assert re.search(
        r'paired difference das - vanilla, bbox_mAP: seed 0: [+-]\d\.\d{3}, '
        r'seed 1: [+-]\d\.\d{3}; mean ± sd [+-]\d\.\d{3} ± \d\.\d{3}', out)
    # the vanilla detector started from the classifier's backbone: the same tensors
    classifier = torch.load(find_latest_checkpoint(osp.join(work, 'seed0',
                                                            'pretrain_classifier')))['state_dict']
    base_log = glob.glob(osp.join(work, 'seed0', 'base_vanilla', '*', '*.log'))[0]
    assert 'load backbone. in model from' in open(base_log).read()
    record = json.load(open(osp.join(work, 'seed0', 'base_vanilla', 'stage_record.json')))
    assert list(record['inputs']) == [
        find_latest_checkpoint(osp.join(work, 'seed0', 'pretrain_classifier'))
    ]
    assert any(k.startswith('backbone.layer4') for k in classifier)
    assert 'picture of detections' in out and 'done in' in out.splitlines()[-1]
    for seed in (0, 1):
        assert osp.getsize(osp.join(work, f'seed{seed}', 'detections.png')) > 10_000
    logs = glob.glob(osp.join(work, '**', '*.log'), recursive=True)
    assert any('Config:' in open(path).read() for path in logs)  # mmengine's full log


def test_detection_demo_at_several_fine_tune_lengths_from_one_start(tmp_path, coco_shapes,
                                                                    cls_shapes):
    """The longer-training control (``make controls-det``): each length's two arms start from
    the one vanilla detector of the seed, trained once, and each length is reported."""
    work = str(tmp_path / 'demo')
    proc = run_tool('tools/demo.py', [
        '--data-root', coco_shapes, '--cls-data-root', cls_shapes, '--work-dir', work,
        '--pretrain-epochs', '1', '--base-iters', '2', '--warmup-iters', '1', '--finetune-iters',
        '2', '4', '--pictures', '1'
    ])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert '[14/14] seed 0: vanilla_finetune-4 COCO evaluation (test)' in out
    # the vanilla detector is one stage, trained once, not once per length
    assert set(re.findall(r'\[(\d+)/14\] seed 0: vanilla Faster R-CNN from it', out)) == {'2'}
    assert '[15/' not in out
    for length in (2, 4):
        assert f'fine-tune {length} iterations, same pretrained start' in out
        assert osp.getsize(osp.join(work, 'seed0', f'detections_finetune-{length}.png')) > 10_000
        final = find_latest_checkpoint(
            osp.join(work, 'seed0', f'das_finetune-{length}', 'stage2_finetune'))
        assert final.endswith(f'iter_{length}.pth')
    base = find_latest_checkpoint(osp.join(work, 'seed0', 'base_vanilla'))
    for arm in ('das_finetune-2', 'vanilla_finetune-4'):
        record = json.load(
            open(osp.join(work, 'seed0', arm, 'stage1_backbone_warmup', 'stage_record.json')))
        assert list(record['inputs']) == [base]


def test_classification_demo_with_its_plain_twin(tmp_path, cls_shapes_64):
    work = str(tmp_path / 'demo_cls')
    proc = run_tool('tools/demo_cls.py', ['--data-root', cls_shapes_64, '--work-dir', work])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert '[2/2] plain, seed 0: training' in out and 'Config:' not in out
    assert 'test top-1' in out and '(chance 25 %)' in out and 'chosen on val' in out
    assert 'das ' in out and 'plain ' in out
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


def test_search_lr_chooses_on_val_and_reports_test(tmp_path, cls_shapes):
    from mmdas.demos import CLS_CONFIGS, Stages, evaluate, search_lr, shapes_cfg
    cfg = shapes_cfg(osp.join(ROOT, CLS_CONFIGS['plain']), cls_shapes, seed=0, length=1)
    work = str(tmp_path / 'search')
    search = search_lr(cfg, (1e-3, 3e-2), 'plain', work, Stages(total=2))
    assert set(search.val_top1) == {1e-3, 3e-2}
    assert search.val_top1[search.best_lr] == max(search.val_top1.values())
    for lr in (1e-3, 3e-2):  # each trial trained at its rate, and its val score is its own
        run = osp.join(work, f'plain_lr{lr:g}_seed0')
        assert f'lr={lr}' in open(osp.join(run, 'config.py')).read()
        assert evaluate(cfg, find_latest_checkpoint(run), str(tmp_path / 'again'),
                        'val')['accuracy/top1'] == search.val_top1[lr]
    best = find_latest_checkpoint(osp.join(work, f'plain_lr{search.best_lr:g}_seed0'))
    assert evaluate(cfg, best, str(tmp_path / 'again'))['accuracy/top1'] == search.test_top1
    with pytest.raises(ValueError, match='at least one'):
        search_lr(cfg, (), 'plain', work, Stages(total=1))


def test_tune_tool_names_a_config_without_its_chosen_rate(tmp_path, cls_shapes):
    proc = run_tool('tools/tune_demo_cls.py', [
        '--data-root', cls_shapes, '--work-dir',
        str(tmp_path / 'tune'), '--grid', '0.0001', '--epochs', '1'
    ])
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    for path in CLS_DEMO_CONFIGS:  # neither config holds 1e-4: both are named
        assert f'{path}: lr=' in proc.stdout and 'chosen 0.0001' in proc.stdout
    assert re.search(r'das +\d+\.\d +0\.0001 +0\.\d+ +\d+\.\d', proc.stdout)


def test_demo_configs_hold_rates_of_the_grid():
    from mmengine.config import Config

    from mmdas.demos import CLS_LR_GRID
    for path in CLS_DEMO_CONFIGS:
        text = open(osp.join(ROOT, path)).read()
        assert Config.fromfile(osp.join(ROOT, path)).optim_wrapper.optimizer.lr in CLS_LR_GRID
        assert 'make tune-cls' in text  # the comment says how the rate was chosen


@pytest.mark.parametrize('arm', ['vanilla', 'das'])
def test_detectors_start_from_the_classifiers_backbone(tmp_path, scope, arm):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmpretrain.registry import MODELS as CLS_MODELS

    from mmdas.demos import DET_CONFIGS, PRETRAIN_CONFIG, from_pretrained
    with scope('mmpretrain'):
        classifier = CLS_MODELS.build(Config.fromfile(osp.join(ROOT, PRETRAIN_CONFIG)).model)
    classifier.init_weights()
    path = str(tmp_path / 'classifier.pth')
    torch.save(dict(state_dict=classifier.state_dict()), path)
    cfg = from_pretrained(Config.fromfile(osp.join(ROOT, DET_CONFIGS[arm])), path)
    with scope('mmdet'):
        detector = MODELS.build(cfg.model)
    detector.init_weights()
    own = detector.backbone.state_dict()
    loaded = {
        k[len('backbone.'):]: v
        for k, v in classifier.state_dict().items() if k.startswith('backbone.')
    }
    assert set(loaded) == {k for k in own if '.das_gate.' not in k}  # every host tensor
    assert all(torch.equal(own[k], v) for k, v in loaded.items())
    assert (arm == 'das') == any('.das_gate.' in k for k in own)
    # A classifier of another width does not fit: named, never half-loaded.
    wide = Config.fromfile(osp.join(ROOT, PRETRAIN_CONFIG))
    wide.model.backbone.update(stem_channels=32, base_channels=32)
    wide.model.head.in_channels = 256
    with scope('mmpretrain'):
        torch.save(dict(state_dict=CLS_MODELS.build(wide.model).state_dict()), path)
    with pytest.raises(ValueError, match=r'does not fit .*ResNet.*prefix'):
        from_pretrained(Config.fromfile(osp.join(ROOT, DET_CONFIGS[arm])), path)
