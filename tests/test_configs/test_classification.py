"""DAS backbones through mmpretrain: configs, baselines, training, metrics and bad input."""
import glob
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import Config

import mmdas  # noqa: F401
from mmdas.datasets import shapes_cfg
from mmdas.engine import build_runner
from utils import ROOT

CFG_DIR = osp.join(ROOT, 'configs/mmpretrain')
DEMO = osp.join(CFG_DIR, 'demo/das-resnet18-w16_shapes-cls.py')

RECIPES = {  # config: (lr, weight decay, batch per GPU, base batch)
    'das-resnet18_8xb32_in1k.py': (0.1, 1e-4, 32, 256),
    'das-resnet50_8xb32_in1k.py': (0.1, 1e-4, 32, 256),
    'das-resnet101_8xb32_in1k.py': (0.1, 1e-4, 32, 256),
    'das-mobilenet-v2_8xb12_in1k.py': (0.045, 4e-5, 12, 96),
    'das-resnet18_8xb16_cifar100.py': (0.1, 5e-4, 16, 128),
    'das-resnet50_8xb16_cifar100.py': (0.1, 5e-4, 16, 128),
    'das-resnet50_8xb4_stanford-dogs.py': (0.1, 1e-4, 4, 32),
}


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(RECIPES))
def test_configs_follow_the_recipe_and_have_a_plain_twin(name, scope):
    from mmpretrain.registry import MODELS
    lr, wd, batch, base = RECIPES[name]
    cfg = Config.fromfile(osp.join(CFG_DIR, name))
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.optim_wrapper.optimizer.lr == lr and cfg.optim_wrapper.optimizer.weight_decay == wd
    assert cfg.train_dataloader.batch_size == batch and cfg.auto_scale_lr.base_batch_size == base
    plain_cfg = Config.fromfile(osp.join(CFG_DIR, name[len('das-'):]))
    assert plain_cfg.optim_wrapper == cfg.optim_wrapper
    assert plain_cfg.param_scheduler == cfg.param_scheduler
    cfg.model.backbone.init_cfg = plain_cfg.model.backbone.init_cfg = None
    with scope('mmpretrain'):
        das, plain = MODELS.build(cfg.model), MODELS.build(plain_cfg.model)
    assert len(das.backbone.stage_gates()) == 4 and not plain.backbone.stage_gates()
    assert not any('das_gate' in k for k in plain.state_dict())
    size = 32 if 'cifar' in name else 64
    x = torch.randn(2, 3, size, size)
    assert das(x).shape == plain(x).shape == (2, cfg.model.head.num_classes)


def test_recipe_schedules():
    in1k = Config.fromfile(osp.join(CFG_DIR, 'das-resnet50_8xb32_in1k.py'))
    assert in1k.param_scheduler.milestones == [30, 60, 90] and in1k.train_cfg.max_epochs == 100
    cifar = Config.fromfile(osp.join(CFG_DIR, 'das-resnet18_8xb16_cifar100.py'))
    assert cifar.param_scheduler.milestones == [70, 130, 200, 260]
    assert cifar.param_scheduler.gamma == 0.2 and cifar.train_cfg.max_epochs == 300
    mbv2 = Config.fromfile(osp.join(CFG_DIR, 'das-mobilenet-v2_8xb12_in1k.py'))
    assert mbv2.param_scheduler.type == 'StepLR' and mbv2.param_scheduler.gamma == 0.98
    dogs = Config.fromfile(osp.join(CFG_DIR, 'das-resnet50_8xb4_stanford-dogs.py'))
    assert dogs.param_scheduler.type == 'CosineAnnealingLR'
    assert [t['type'] for t in dogs.train_pipeline][1:3] == ['RandomResizedCrop', 'RandomFlip']


def demo_cfg(root, work_dir, epochs=1):
    cfg = shapes_cfg(DEMO, root, seed=0, length=epochs)
    cfg.train_dataloader.batch_size = 8
    cfg.work_dir = str(work_dir)
    return cfg


@pytest.mark.slow
def test_trains_tests_and_reports_top1_with_mmpretrain_metrics(cls_shapes, tmp_path):
    runner = build_runner(demo_cfg(cls_shapes, tmp_path))
    runner.train()
    metrics = runner.test()
    # top-1 counted here from the model's own predictions on the same test images
    right = total = 0
    runner.model.eval()
    with torch.no_grad():
        for batch in runner.test_dataloader:
            for sample in runner.model.test_step(batch):
                right += int(sample.pred_label == sample.gt_label)
                total += 1
    assert total == 16 and metrics['accuracy/top1'] == pytest.approx(100 * right / total)
    ckpt = torch.load(tmp_path / 'epoch_1.pth')
    assert any('.das_gate.' in k for k in ckpt['state_dict'])


def test_classifier_checkpoint_initialises_the_detection_backbone(cls_shapes, tmp_path, scope):
    """The one line a user changes: backbone.init_cfg with prefix='backbone.'."""
    from mmdet.registry import MODELS
    runner = build_runner(demo_cfg(cls_shapes, tmp_path))
    runner.train()
    state = torch.load(tmp_path / 'epoch_1.pth')['state_dict']
    det_cfg = Config.fromfile(
        osp.join(ROOT, 'configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py'))
    det_cfg.model.backbone.update(
        stem_channels=16,
        init_cfg=dict(
            type='Pretrained', checkpoint=str(tmp_path / 'epoch_1.pth'), prefix='backbone.'))
    with scope('mmdet'):
        detector = MODELS.build(det_cfg.model)
    detector.init_weights()
    for key, value in detector.backbone.state_dict().items():
        assert torch.equal(value, state[f'backbone.{key}']), key


def test_missing_data_root_names_the_path(tmp_path):
    cfg = demo_cfg(str(tmp_path / 'no_such_dir'), tmp_path)
    with pytest.raises(Exception, match='no_such_dir'):
        build_runner(cfg).train()


def test_class_count_disagreeing_with_the_head_is_named(cls_shapes, tmp_path):
    cfg = demo_cfg(cls_shapes, tmp_path)
    cfg.model.head.num_classes = 5
    cfg.data_preprocessor.num_classes = 5
    with pytest.raises(
            AssertionError,
            match=r'`num_classes` \(5\) in \w+ of ImageClassifier .* 4\) in CustomDataset'):
        build_runner(cfg).train()


def test_a_corrupt_image_is_logged_and_skipped_in_training(tmp_path, cls_shapes):
    root = str(tmp_path / 'data')
    shutil.copytree(cls_shapes, root)  # this test corrupts a file: its own copy
    bad = sorted(glob.glob(osp.join(root, 'train', 'disc', '*.png')))[0]
    with open(bad, 'wb') as f:
        f.write(b'not an image')
    from mmpretrain.registry import DATASETS
    cfg = demo_cfg(root, tmp_path)
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
    index = [i for i in range(len(dataset)) if dataset.get_data_info(i)['img_path'] == bad][0]
    import logging

    from mmengine.logging import MMLogger
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        sample = dataset[index]  # another image comes instead
    finally:
        logger.removeHandler(handler)
    assert sample['data_samples'].img_path != bad
    assert any(f"skipping image '{bad}'" in r.getMessage() for r in records)
    # At test time the plain loader names the file and stops.
    cfg.val_dataloader.dataset.data_prefix = 'train'
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        val = DATASETS.build(cfg.val_dataloader.dataset)
    with pytest.raises(AssertionError, match='failed to load image'):
        val[index]


@pytest.mark.slow
def test_the_convnext_config_changes_only_the_backbone_and_loads_a_plain_convnext(scope, tmp_path):
    """ConvNeXt-T with DAS is mmpretrain's own config with the backbone wrapped: the same
    recipe, and a plain ConvNeXt-T's weights load into it with only the gates new."""
    from mmengine.hub import get_config
    from mmpretrain.registry import MODELS

    from utils import unscoped
    cfg = Config.fromfile(osp.join(CFG_DIR, 'das-convnext-tiny_32xb128_in1k.py'))
    host = get_config('mmpretrain::convnext/convnext-tiny_32xb128_in1k.py')
    ours, theirs = unscoped(cfg.to_dict()), unscoped(host.to_dict())
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'train_dataloader'):
        assert ours[key] == theirs[key], key
    backbone = ours['model'].pop('backbone')
    assert ours['model'] == {k: v for k, v in theirs['model'].items() if k != 'backbone'}
    assert backbone.pop('host') == theirs['model']['backbone'].pop('type') == 'ConvNeXt'
    assert {k: v for k, v in backbone.items() if k not in ('type', 'stages', 'gate')} == \
        theirs['model']['backbone']
    with scope('mmpretrain'):
        das, plain = MODELS.build(cfg.model), MODELS.build(host.model)
    result = das.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert {k.split('.')[2] for k in result.missing_keys} == {f'stages_{i}' for i in range(4)}
    assert all(k.startswith('backbone.gates.') for k in result.missing_keys)
