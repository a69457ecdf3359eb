"""SDA-ResNet (SDA-xNet's stage-wise depth attention on the ResNet layouts), checked by setting
its attention weights: a one-hot softmax passes one block through, equal logits average them;
an ordinary ResNet checkpoint loads with only the attention new."""
import pytest
import torch

import mmdas  # noqa: F401
from mmdas.models.backbones.sda_resnet import SDAStage
from mmdas.models.layers import sda_hidden_channels

CASES = [('mmdet', 18), ('mmdet', 50), ('mmpretrain', 18), ('mmpretrain', 50)]


def build(scope_name, depth, **kwargs):
    from mmengine.registry import MODELS, DefaultScope
    with DefaultScope.overwrite_default_scope(scope_name):
        torch.manual_seed(0)
        model = MODELS.build(
            dict(
                type='SDAResNet', depth=depth, base_channels=16, out_indices=(0, 1, 2, 3),
                **kwargs))
    model.init_weights()
    return model


def block_outputs(stage: SDAStage, x):
    """Each block's output as the host computes it (relu of its pre-activation output)."""
    outs = []
    for block in list(stage)[:-1]:
        x = block(x)
        outs.append(x)
    return outs


def set_logits(stage: SDAStage, biases):
    for conv, bias in zip(stage.depth_attention.expand, biases):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.constant_(conv.bias, bias)


@pytest.mark.parametrize('scope_name, depth', CASES)
def test_depth_attention_passes_one_block_or_averages_them(scope_name, depth):
    model = build(scope_name, depth).eval()
    for name in model.res_layers:
        stage = getattr(model, name)
        blocks = len(stage) - 1
        stem_out = torch.relu(torch.randn(2, stage[0].conv1.in_channels, 16, 16))
        with torch.no_grad():
            outs = block_outputs(stage, stem_out)
            for k in range(blocks):
                set_logits(stage, [40.0 if i == k else 0.0 for i in range(blocks)])
                torch.testing.assert_close(stage(stem_out), outs[k], rtol=0, atol=1e-6)
            set_logits(stage, [1.5] * blocks)
            torch.testing.assert_close(
                stage(stem_out), torch.stack(outs).mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('scope_name, depth', CASES)
def test_widths_and_what_trains(scope_name, depth):
    model = build(scope_name, depth, norm_eval=True, frozen_stages=1)
    for name in model.res_layers:
        attention = getattr(model, name).depth_attention
        channels = attention.squeeze.in_channels
        assert attention.squeeze.out_channels == sda_hidden_channels(channels)
        assert sda_hidden_channels(channels) == max(channels // 16, 64)
        assert len(attention.expand) == len(getattr(model, name)) - 1
    model.train()
    assert all(a.training and a.norm.training for a in model.depth_attentions())
    assert all(p.requires_grad for a in model.depth_attentions() for p in a.parameters())
    assert not any(p.requires_grad for p in model.layer1[0].parameters())  # the host's freeze
    outs = model(torch.randn(2, 3, 64, 64))
    sum(o.mean() for o in outs).backward()
    assert all(p.grad is not None for a in model.depth_attentions() for p in a.parameters())


@pytest.mark.parametrize('scope_name', ['mmdet', 'mmpretrain'])
def test_an_ordinary_resnet_checkpoint_loads_with_only_the_attention_new(scope_name, tmp_path):
    from mmengine.registry import MODELS, DefaultScope
    with DefaultScope.overwrite_default_scope(scope_name):
        host = MODELS.build(dict(type='ResNet', depth=18, base_channels=16))
    path = str(tmp_path / 'resnet18_w16.pth')
    torch.save(dict(state_dict=host.state_dict()), path)
    model = build(scope_name, 18, init_cfg=dict(type='Pretrained', checkpoint=path))
    own = model.state_dict()
    for key, value in host.state_dict().items():
        assert torch.equal(own[key], value), key
    new = [k for k in own if k not in host.state_dict()]
    assert new and all('.depth_attention.' in k for k in new)
    with DefaultScope.overwrite_default_scope(scope_name):
        wide = MODELS.build(dict(type='ResNet', depth=18, base_channels=32))
    torch.save(dict(state_dict=wide.state_dict()), path)
    with pytest.raises(ValueError, match='does not fit SDAResNet'):
        build(scope_name, 18, init_cfg=dict(type='Pretrained', checkpoint=path))


@pytest.mark.parametrize('config, base, scope_name', [
    ('faster-rcnn_sda-r50_fpn_1x_coco.py', 'das/faster-rcnn_das-r50_fpn_1x_coco.py', 'mmdet'),
    ('sda-resnet50_8xb32_in1k.py', 'mmpretrain/das-resnet50_8xb32_in1k.py', 'mmpretrain'),
])
def test_sda_configs_are_the_das_configs_with_the_sda_backbone(config, base, scope_name):
    import os.path as osp

    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    from mmdas.models.backbones import plain_backbone_cfg
    from utils import ROOT
    cfg = Config.fromfile(osp.join(ROOT, 'configs/gates', config))
    das = Config.fromfile(osp.join(ROOT, 'configs', base))
    assert cfg.optim_wrapper == das.optim_wrapper and cfg.train_cfg == das.train_cfg
    assert dict(cfg.model.backbone, type='ResNet') == plain_backbone_cfg(das.model.backbone)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope(scope_name):
        model = MODELS.build(cfg.model).eval()
    assert type(model.backbone).__name__.startswith('SDAResNet')
    with torch.no_grad():
        if scope_name == 'mmdet':
            assert len(model.extract_feat(torch.randn(1, 3, 64, 64))) == 5
        else:
            assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize('scope_name', ['mmdet', 'mmpretrain'])
def test_one_image_per_process_in_training_is_refused_with_what_works(scope_name):
    """The depth attention's BatchNorm cannot train on one pooled vector: refused at the first
    forward, naming why and what works; two images train, and one image runs in eval."""
    model = build(scope_name, 18)
    model.train()
    with pytest.raises(ValueError, match=r'two or more images per GPU.*SyncBN'):
        model(torch.randn(1, 3, 64, 64))
    model(torch.randn(2, 3, 64, 64))
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
