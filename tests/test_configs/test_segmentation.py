"""The gate in another OpenMMLab toolbox: mmsegmentation 1.x, trained through its own runner."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import mmdas  # noqa: F401
from mmdas.datasets import SHAPE_CLASSES
from mmdas.engine import build_runner
from utils import ROOT

CONFIG = osp.join(ROOT, 'configs/mmseg/fcn_das-r50-d8_4xb2-40k_cityscapes-512x1024.py')


def tiny_cfg(root: str, work_dir, backbone: dict) -> Config:
    """Our Cityscapes config on the synthetic set: 64 px crops, a narrow backbone, 2 iterations."""
    cfg = Config.fromfile(CONFIG)
    cfg.model.pretrained = None  # no download here
    cfg.model.backbone.update(backbone, base_channels=16)
    cfg.model.decode_head.update(in_channels=512, channels=32, num_classes=5)
    cfg.model.auxiliary_head.update(in_channels=256, channels=16, num_classes=5)
    cfg.model.data_preprocessor.size = (64, 64)
    dataset = dict(
        type='BaseSegDataset',
        data_root=root,
        img_suffix='.jpg',
        seg_map_suffix='.png',
        metainfo=dict(classes=('background', ) + SHAPE_CLASSES),
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='RandomCrop', crop_size=(64, 64)),
            dict(type='PackSegInputs')
        ])
    cfg.train_dataloader = dict(
        batch_size=2,
        num_workers=0,
        dataset=dataset,
        sampler=dict(type='InfiniteSampler', shuffle=True))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=100)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=2)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.work_dir = str(work_dir)
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize(
    'backbone',
    [
        dict(),  # the config's DASResNetV1c: a gate after each stage
        dict(
            type='ResNetV1c',
            gate_stages=None,
            gate=None,  # mmseg's own ResNetV1c + the plugin
            plugins=[
                dict(
                    cfg=dict(type='DASGate', alpha=0.25),
                    stages=(False, True, True, True),
                    position='after_conv3')
            ]),
    ],
    ids=['stage-gates', 'plugin'])
def test_an_mmseg_segmentor_with_das_gates_trains_through_mmseg_runner(
        seg_shapes, tmp_path, backbone):
    from mmdas.models import DASGate
    cfg = tiny_cfg(seg_shapes, tmp_path, {k: v for k, v in backbone.items() if v is not None})
    for key in ('gate_stages', 'gate'):
        if key in backbone and backbone[key] is None:
            cfg.model.backbone.pop(key)
    runner = build_runner(cfg)
    gates = [m for m in runner.model.modules() if isinstance(m, DASGate)]
    assert gates and type(runner.model).__name__ == 'EncoderDecoder'
    before = [g.gate_norm.weight.detach().clone() for g in gates]
    runner.train()
    after = torch.load(tmp_path / 'iter_2.pth')['state_dict']
    assert runner.iter == 2
    gate_keys = [k for k in after if '.das_gate' in k and k.endswith('gate_norm.weight')]
    assert len(gate_keys) == len(gates)
    assert any(not torch.equal(b, g.gate_norm.weight) for b, g in zip(before, gates))
    if not backbone:
        assert [g.in_channels for g in runner.model.backbone.stage_gates()] == [64, 128, 256, 512]
