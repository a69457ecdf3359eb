"""`make demo` and `make demo-cls` at a tiny scale: every stage trained from the one before, a
closing table over seeds, a picture; full logs on disk. The demos train: all are `slow`."""
import glob
import json
import os.path as osp
import re

import pytest
import torch
from mmengine.runner import find_latest_checkpoint

from utils import ROOT, run_main

CLS_DEMO_CONFIGS = ('configs/mmpretrain/demo/das-resnet18-w16_shapes-cls.py',
                    'configs/mmpretrain/demo/resnet18-w16_shapes-cls.py')


@pytest.mark.slow
def test_detection_demo_over_two_seeds(tmp_path, coco_shapes, cls_shapes):
    work = str(tmp_path / 'demo')
    proc = run_main('projects/das_bench/tools/demo.py', [
        '--data-root', coco_shapes, '--cls-data-root', cls_shapes, '--work-dir', work,
        '--pretrain-epochs', '1', '--base-iters', '2', '--warmup-iters', '1', '--finetune-iters',
        '2', '--pictures', '2', '--seeds', '0', '1'
    ])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the closing table: both seeds' paired difference and its mean
    assert re.search(
        r'seed 0: [+-]\d\.\d{3}, seed 1: [+-]\d\.\d{3}; mean ± sd [+-]\d\.\d{3} ± \d\.\d{3}',
        proc.stdout)
    # every stage of both seeds recorded: pretraining, the vanilla start, two stages per arm
    records = glob.glob(osp.join(work, 'seed*', '**', 'stage_record.json'), recursive=True)
    assert len(records) == 2 * 6, records
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
    for seed in (0, 1):
        assert osp.getsize(osp.join(work, f'seed{seed}', 'detections.png')) > 10_000
    logs = glob.glob(osp.join(work, '**', '*.log'), recursive=True)
    assert any('Config:' in open(path).read() for path in logs)  # mmengine's full log


@pytest.mark.slow
def test_detection_demo_at_several_fine_tune_lengths_from_one_start(tmp_path, coco_shapes,
                                                                    cls_shapes):
    """The longer-training control (``make controls-det``): each length's two arms start from
    the one vanilla detector of the seed, trained once, and each length is reported."""
    work = str(tmp_path / 'demo')
    proc = run_main('projects/das_bench/tools/demo.py', [
        '--data-root', coco_shapes, '--cls-data-root', cls_shapes, '--work-dir', work,
        '--pretrain-epochs', '1', '--base-iters', '2', '--warmup-iters', '1', '--finetune-iters',
        '2', '4', '--pictures', '1'
    ])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the vanilla detector is one stage, trained once, not once per length
    assert len(glob.glob(osp.join(work, 'seed0', 'base_vanilla*'))) == 1
    for length in (2, 4):
        assert f'fine-tune {length} iterations, same pretrained start' in proc.stdout
        assert osp.getsize(osp.join(work, 'seed0', f'detections_finetune-{length}.png')) > 10_000
        final = find_latest_checkpoint(
            osp.join(work, 'seed0', f'das_finetune-{length}', 'stage2_finetune'))
        assert final.endswith(f'iter_{length}.pth')
    base = find_latest_checkpoint(osp.join(work, 'seed0', 'base_vanilla'))
    for arm in ('das_finetune-2', 'vanilla_finetune-4'):
        record = json.load(
            open(osp.join(work, 'seed0', arm, 'stage1_backbone_warmup', 'stage_record.json')))
        assert list(record['inputs']) == [base]


@pytest.mark.slow
def test_classification_demo_with_its_plain_twin(tmp_path, cls_shapes_64):
    work = str(tmp_path / 'demo_cls')
    proc = run_main('projects/das_bench/tools/demo_cls.py',
                    ['--data-root', cls_shapes_64, '--work-dir', work])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r'das +\d+\.\d', proc.stdout) and re.search(r'plain +\d+\.\d', proc.stdout)
    pictures = glob.glob(osp.join(work, 'attention', '*.png'))
    assert len(pictures) == 4


@pytest.mark.slow
def test_search_lr_chooses_on_val_and_reports_test(tmp_path, cls_shapes):
    from das_bench import CLS_CONFIGS, Stages, evaluate, search_lr
    from mmdas.datasets import shapes_cfg
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


@pytest.mark.slow
def test_tune_tool_names_a_config_without_its_chosen_rate(tmp_path, cls_shapes):
    proc = run_main('projects/das_bench/tools/tune_demo_cls.py', [
        '--data-root', cls_shapes, '--work-dir',
        str(tmp_path / 'tune'), '--grid', '0.0001', '--epochs', '1'
    ])
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    for path in CLS_DEMO_CONFIGS:  # neither config holds 1e-4: both are named
        assert f'{path}: lr=' in proc.stdout and 'chosen 0.0001' in proc.stdout
    assert re.search(r'das +\d+\.\d +0\.0001 +0\.\d+ +\d+\.\d', proc.stdout)


def test_demo_configs_hold_rates_of_the_grid():
    from mmengine.config import Config

    from das_bench import CLS_LR_GRID
    for path in CLS_DEMO_CONFIGS:
        text = open(osp.join(ROOT, path)).read()
        assert Config.fromfile(osp.join(ROOT, path)).optim_wrapper.optimizer.lr in CLS_LR_GRID
        assert 'make tune-cls' in text  # the comment says how the rate was chosen


@pytest.mark.parametrize('arm', ['vanilla', 'das'])
def test_detectors_start_from_the_classifiers_backbone(tmp_path, scope, arm):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmpretrain.registry import MODELS as CLS_MODELS

    from das_bench import DET_CONFIGS, PRETRAIN_CONFIG, from_pretrained
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
