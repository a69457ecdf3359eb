"""DASGate as an mmcv plugin inside mmdet's ResNet / ResNeXt."""
import pytest
import torch
from mmdet.models.backbones import ResNet, ResNeXt

import mmdas  # noqa: F401
from mmdas.models import DASGate, DASResNet


@pytest.mark.slow
@pytest.mark.parametrize('position, channels', [('after_conv1', 64), ('after_conv2', 64),
                                                ('after_conv3', 256)])
@pytest.mark.parametrize('host', [ResNet, ResNeXt])
def test_plugin_at_every_mmdet_position(host, position, channels):
    extra = dict(groups=32, base_width=4) if host is ResNeXt else {}
    model = host(
        depth=50,
        plugins=[
            dict(
                cfg=dict(type='DASGate', alpha=0.25, postfix='_1'),
                stages=(True, False, False, True),
                position=position)
        ],
        **extra)
    block = model.layer1[0]
    gate = getattr(block, 'das_gate_1')
    assert isinstance(gate, DASGate) and gate.alpha == 0.25
    if host is ResNet:
        assert gate.in_channels == channels
    assert not hasattr(model.layer2[0], 'das_gate_1') and hasattr(model.layer4[0], 'das_gate_1')
    model.init_weights()
    assert gate.deform_conv.conv_offset.weight.abs().sum() == 0  # host init did not undo ours
    outs = model(torch.randn(1, 3, 64, 64))
    sum(o.sum() for o in outs).backward()
    assert gate.deform_conv.weight.grad is not None


def test_shipped_plugin_config_builds(scope):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    cfg = Config.fromfile('configs/das/faster-rcnn_r50-das-plugin_fpn_1x_coco.py')
    with scope('mmdet'):
        backbone = MODELS.build(cfg.model.backbone)
    assert isinstance(backbone.layer2[0].das_gate, DASGate)
    assert not hasattr(backbone.layer1[0], 'das_gate')


def test_basic_block_plugins_point_to_das_resnet():
    with pytest.raises(
            ValueError, match=r"BasicBlock \(ResNet-18\) accepts no plugins.*gate_stages"):
        DASResNet(18, plugins=[dict(cfg=dict(type='DASGate'), position='after_conv2')])
