"""The attention modules DAS is compared with: interface, gradients, and parameter counts
against the figures their papers publish for ResNet-50."""
import glob
import os.path as osp

import pytest
import torch
from mmcv.cnn import build_plugin_layer
from mmdet.models.backbones import ResNet
from mmengine.config import Config

import mmdas  # noqa: F401
from mmdas.models import DASResNet
from mmdas.models.plugins import eca_kernel_size
from utils import ROOT, assert_every_parameter_learns

GATES = {
    'SEGate': dict(type='SEGate'),
    'CBAMGate': dict(type='CBAMGate'),
    'ECAGate': dict(type='ECAGate'),
    'TripletAttentionGate': dict(type='TripletAttentionGate'),
    'CATGate': dict(type='CATGate'),
    'DANetGate': dict(type='DANetGate'),
    'ContextBlock': dict(type='ContextBlock', ratio=1. / 16),
}
ABBR = dict(
    SEGate='se_gate',
    CBAMGate='cbam_gate',
    ECAGate='eca_gate',
    CATGate='cat_gate',
    TripletAttentionGate='triplet_attention_gate',
    DANetGate='danet_gate',
    ContextBlock='context_block')
R50_WITH_CLASSIFIER = 25_557_032  # torchvision / mmpretrain ResNet-50 with its 1000-way fc
R50_STAGES = ((256, 3), (512, 4), (1024, 6), (2048, 3))  # (channels, Bottlenecks) per stage


def build(cfg: dict, channels: int):
    from mmengine.registry import MODELS
    return MODELS.build(dict(cfg, in_channels=channels))


@pytest.mark.parametrize('name', sorted(GATES))
@pytest.mark.parametrize('shape', [(2, 32, 9, 7), (1, 32, 1, 1), (3, 32, 16, 16)])
def test_shape_preserving_and_every_parameter_learns(name, shape):
    torch.manual_seed(0)
    gate = build(GATES[name], 32)
    # Batch norm (CBAM's and Triplet's spatial convs, as their papers') cannot train on one
    # value: a 1x1 map with batch 1 runs in eval mode, as for any BN layer.
    gate.train(shape[0] * shape[2] * shape[3] > 1)
    opt = torch.optim.SGD(gate.parameters(), lr=0.5)
    x = torch.randn(*shape)
    for step in range(2):  # DANet's gammas start at 0: its other weights learn from step 2
        opt.zero_grad()
        y = gate(x)
        assert y.shape == x.shape and y.isfinite().all()
        (y - x.flip(0)).square().mean().backward()
        opt.step()
    if shape[2] * shape[3] > 1:
        assert_every_parameter_learns(gate.named_parameters())


@pytest.mark.parametrize('name', sorted(GATES))
def test_builds_by_name_as_plugin_and_in_every_scope(name, scope):
    from mmdet.registry import MODELS as DET
    from mmpretrain.registry import MODELS as CLS
    layer_name, layer = build_plugin_layer(dict(GATES[name]), postfix='_3', in_channels=64)
    assert layer_name == ABBR[name] + '_3' and type(layer).__name__ == name
    for registry in (DET, CLS):
        with scope(registry.scope):
            assert type(registry.build(dict(GATES[name], in_channels=64))).__name__ == name


def per_block_count(gate_cfg: dict, stages=(True, True, True, True)) -> int:
    """Parameters of an mmdet ResNet-50 with one module per Bottleneck after conv3 (before the
    residual sum, where SE, CBAM, ECA, Triplet Attention and GC put them), plus the 1000-way
    classifier, minus a plain ResNet-50 with that classifier."""
    host = ResNet(50, plugins=[dict(cfg=gate_cfg, stages=stages, position='after_conv3')])
    plain = ResNet(50)
    return sum(p.numel() for p in host.parameters()) - sum(p.numel() for p in plain.parameters())


@pytest.mark.parametrize(
    'gate_cfg, published_millions, stages',
    [
        (dict(type='SEGate'), 28.09, (True, ) * 4),  # SENet, Table 2: SE-ResNet-50 28.09 M
        (dict(type='CBAMGate'), 28.09, (True, ) * 4),  # CBAM, Table 3: ResNet50 + CBAM 28.09 M
        (dict(type='TripletAttentionGate'), 25.56, (True, ) * 4),  # Triplet, ResNet-50 + TA 25.56 M
        # GCNet, Table 2: GC blocks (r16) after conv3 of every block of c3-c5: 28.08 M
        (dict(type='ContextBlock', ratio=1. / 16), 28.08, (False, True, True, True)),
    ],
    ids=['SE', 'CBAM', 'Triplet', 'GC'])
def test_resnet50_parameter_counts_match_the_papers(gate_cfg, published_millions, stages):
    total = R50_WITH_CLASSIFIER + per_block_count(gate_cfg, stages)
    assert round(total / 1e6, 2) == published_millions


def test_eca_adds_about_80_parameters_to_resnet50():
    """ECA-Net: 'only ~80 parameters' over ResNet-50; kernel 5 at 256-1024 channels, 7 at 2048."""
    assert [eca_kernel_size(c) for c, _ in R50_STAGES] == [5, 5, 5, 7]
    added = per_block_count(dict(type='ECAGate'))
    assert added == 3 * 5 + 4 * 5 + 6 * 5 + 3 * 7 == 86


def hand_count(name: str, c: int) -> int:
    """Parameters of one module for ``c`` channels, from each paper's structure."""
    r16, r8 = c // 16, c // 8
    mlp16 = 2 * c * r16 + r16 + c  # c -> c/16 -> c, with biases
    return dict(
        SEGate=mlp16,
        CBAMGate=mlp16 + 2 * 49 + 2,  # + 7x7 conv (2 -> 1, no bias) and its BN
        ECAGate=eca_kernel_size(c),
        TripletAttentionGate=3 * (2 * 49 + 2),
        CATGate=mlp16 + (49 + 1) + 3 + 3 + 2,  # + 7x7 conv (1 -> 1) + colla-factors
        DANetGate=2 * (c * r8 + r8) + c * c + c + 2,  # query, key, value, two gammas
        ContextBlock=(c + 1) + (c * r16 + r16) + 2 * r16 + (r16 * c + c),
    )[name]


@pytest.mark.parametrize('name', sorted(GATES))
def test_counts_at_the_das_placement_on_resnet50(name, scope):
    """One module after each stage of ResNet-50, where DAS puts its four gates."""
    model = DASResNet(50, gate=GATES[name])
    gates = model.stage_gates()
    assert [type(g).__name__ for g in gates] == [name] * 4
    assert [getattr(model, f'layer{i}')[-1] is g for i, g in enumerate(gates, 1)] == [True] * 4
    added = sum(p.numel() for p in model.parameters()) - sum(p.numel()
                                                             for p in ResNet(50).parameters())
    assert added == sum(hand_count(name, c) for c, _ in R50_STAGES)


def test_gate_config_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"alpha=0.3 configures the DASGate, but gate is 'SEGate'"):
        DASResNet(50, gate=dict(type='SEGate'), alpha=0.3)
    with pytest.raises(ValueError, match="gate must be a config dict with a 'type'"):
        DASResNet(50, gate='SEGate')
    with pytest.raises(ValueError, match='gate: leave in_channels out'):
        DASResNet(50, gate=dict(type='SEGate', in_channels=64))
    with pytest.raises(KeyError, match='NoSuchGate'):
        DASResNet(50, gate=dict(type='NoSuchGate'))


def test_a_plain_checkpoint_loads_into_a_cbam_backbone_with_only_its_modules_new(tmp_path):
    host = ResNet(50)
    for p in host.parameters():  # "trained": every tensor differs from a fresh init
        p.data.normal_()
    torch.save(host.state_dict(), tmp_path / 'r50.pth')
    model = DASResNet(
        50,
        gate=dict(type='CBAMGate'),
        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'r50.pth')))
    model.init_weights()
    assert model.gate_name == 'cbam_gate' and hasattr(model.layer4, 'cbam_gate')
    saved, own = host.state_dict(), model.state_dict()
    for key, value in saved.items():
        assert torch.equal(own[key], value), key
    assert {k for k in own if k not in saved} == {k for k in own if '.cbam_gate.' in k}


# every gate config (SDA-xNet is a backbone, not a gate: tests/test_models/test_sda.py)
CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, 'configs/gates/*.py')) if 'sda-' not in p)


@pytest.mark.slow
@pytest.mark.parametrize('path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_comparator_configs_change_only_the_gate(path, scope):
    from mmengine.registry import MODELS
    cfg = Config.fromfile(path)
    base = Config.fromfile(
        osp.join(
            ROOT, 'configs/das/faster-rcnn_das-r50_fpn_1x_coco.py'
            if 'faster-rcnn' in path else 'configs/mmpretrain/das-resnet50_8xb32_in1k.py'))
    assert cfg.optim_wrapper == base.optim_wrapper and cfg.train_cfg == base.train_cfg
    differing = {
        k
        for k in set(cfg.model.backbone) | set(base.model.backbone)
        if cfg.model.backbone.get(k) != base.model.backbone.get(k)
    }
    assert differing <= {'gate', 'gate_stages'}
    cfg.model.backbone.init_cfg = None
    with scope(cfg.get('default_scope', 'mmdet')):
        model = MODELS.build(cfg.model)
    assert type(model.backbone.stage_gates()[-1]).__name__ == cfg.model.backbone.gate.type
    size = 64
    if 'faster-rcnn' in path:
        assert len(model.extract_feat(torch.randn(1, 3, size, size))) == 5
    else:
        assert model(torch.randn(1, 3, size, size)).shape == (1, 1000)
