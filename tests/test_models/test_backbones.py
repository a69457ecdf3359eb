"""DASResNet / DASMobileNetV2 in the style of mmdet's backbone tests."""
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

import mmdas  # noqa: F401
from mmdas.models import DASGate, DASMobileNetV2, DASResNet, DASResNeXt


def is_norm_eval(module):
    return all(not m.training for m in module.modules() if isinstance(m, _BatchNorm))


def all_frozen(module):
    return all(not p.requires_grad for p in module.parameters())


@pytest.mark.parametrize('depth, channels', [(18, (64, 128, 256, 512)), (34, (64, 128, 256, 512)),
                                             (50, (256, 512, 1024, 2048)),
                                             (101, (256, 512, 1024, 2048)),
                                             (152, (256, 512, 1024, 2048))])
def test_resnet_output_shapes_strides_and_gates_for_every_depth(depth, channels):
    model = DASResNet(depth, deform_impl='torch')
    gates = model.stage_gates()
    assert len(gates) == 4 and [g.in_channels for g in gates] == list(channels)
    for i, gate in enumerate(gates, 1):
        assert getattr(model, f'layer{i}')[-1] is gate  # after the stage's last block
    model.init_weights()
    model.train()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, c, 64 // s, 64 // s)
                                              for c, s in zip(channels, (4, 8, 16, 32))]


def test_resnet_gate_stages_and_alpha_are_arguments():
    model = DASResNet(18, gate_stages=(False, True, False, True), alpha=0.5, out_indices=(3, ))
    assert [g.in_channels for g in model.stage_gates()] == [128, 512]
    assert all(g.alpha == 0.5 for g in model.stage_gates())
    assert not hasattr(model.layer1, 'das_gate')
    assert len(model(torch.randn(2, 3, 64, 64))) == 1


def test_resnet_frozen_stages_freeze_the_host_but_gates_keep_training():
    model = DASResNet(50, frozen_stages=2, deform_impl='torch')
    model.init_weights()
    model.train()
    assert all_frozen(model.conv1) and all_frozen(model.bn1) and not model.bn1.training
    for i in (1, 2):
        layer = getattr(model, f'layer{i}')
        blocks = [m for m in layer if not isinstance(m, DASGate)]
        assert all(all_frozen(b) and is_norm_eval(b) for b in blocks)
        assert all(p.requires_grad for p in layer.das_gate.parameters())
        assert layer.das_gate.training
    assert all(p.requires_grad for p in model.layer3.parameters())
    out = model(torch.randn(1, 3, 64, 64))
    sum(o.sum() for o in out).backward()
    assert model.layer1.das_gate.pointwise.weight.grad is not None
    assert model.layer1[0].conv1.weight.grad is None

    frozen_gates = DASResNet(50, frozen_stages=2, freeze_gates=True)
    frozen_gates.train()
    assert all_frozen(frozen_gates.layer1) and all_frozen(frozen_gates.layer2)
    assert all(p.requires_grad for p in frozen_gates.layer3.das_gate.parameters())


def test_resnet_norm_eval_and_host_options_keep_working():
    model = DASResNet(
        50,
        norm_eval=True,
        style='caffe',
        deep_stem=True,
        avg_down=True,
        with_cp=True,
        zero_init_residual=True,
        deform_impl='torch')
    model.init_weights()
    model.train()
    assert is_norm_eval(model)
    assert model.layer1[0].conv1.stride == (2, 2) or model.layer2[0].conv1.stride == (2, 2)
    assert model.layer4[-2].norm3.weight.abs().sum() == 0  # zero_init_residual
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    outs = model(x)
    sum(o.sum() for o in outs).backward()
    assert model.layer4.das_gate.deform_conv.weight.grad is not None


def test_resnet_with_dcn_and_plugins():
    model = DASResNet(
        50,
        dcn=dict(type='DCNv2', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True),
        plugins=[
            dict(
                cfg=dict(type='ContextBlock', ratio=1. / 16),
                stages=(False, True, True, True),
                position='after_conv3')
        ],
        deform_impl='torch')
    assert hasattr(model.layer3[0], 'context_block')
    outs = model(torch.randn(1, 3, 64, 64))
    assert outs[-1].shape == (1, 2048, 2, 2)


@pytest.mark.parametrize('kwargs, match', [
    (dict(depth=20), r'depth must be one of \(18, 34, 50, 101, 152\), got 20'),
    (dict(depth=50, gate_stages=(True, True)), 'gate_stages must be a list of 4 bools'),
    (dict(depth=50, gate_stages=(1, 0, 1, 0)), 'gate_stages must be a list of 4 bools'),
    (dict(depth=50, alpha=0.0), r'alpha must be a number in \(0, 1\]'),
    (dict(depth=50, deform_impl='gpu'), 'deform_impl must be one of'),
])
def test_resnet_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DASResNet(**kwargs)


def test_an_unknown_depth_raises_the_hosts_key_error_too():
    """The host's own tests expect its KeyError (mmdet's ResNet(20))."""
    from mmdet.models.backbones import ResNet
    for host in (ResNet, DASResNet):
        with pytest.raises(KeyError):
            host(20)


def test_mobilenet_v2_gates_at_four_strides_and_outputs():
    model = DASMobileNetV2(out_indices=(1, 2, 4, 7), deform_impl='torch')
    assert [g.in_channels for g in model.stage_gates()] == [24, 32, 96, 320]
    assert [n for n in model.gated_stages] == ['layer2', 'layer3', 'layer5', 'layer7']
    model.init_weights()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 24, 16, 16), (1, 32, 8, 8), (1, 96, 4, 4),
                                              (1, 1280, 2, 2)]


def test_mobilenet_v2_widen_factor_frozen_stages_norm_eval():
    model = DASMobileNetV2(
        widen_factor=0.5,
        gate_indices=(0, 3),
        frozen_stages=1,
        norm_eval=True,
        act_cfg=dict(type='ReLU'),
        with_cp=True)
    model.train()
    assert [g.in_channels for g in model.stage_gates()] == [8, 32]
    assert all_frozen(model.conv1)
    assert all(all_frozen(b) for b in model.layer1 if not isinstance(b, DASGate))
    assert all(p.requires_grad for p in model.layer1.das_gate.parameters())
    assert is_norm_eval(model)
    outs = model(torch.randn(2, 3, 32, 32))
    assert outs[-1].shape[1] == 1280


@pytest.mark.parametrize('gate_indices', [(7, ), (1, 1), (-1, ), (0, 9), 3])
def test_mobilenet_v2_bad_gate_indices(gate_indices):
    with pytest.raises(ValueError, match='gate_indices must be distinct layer indices'):
        DASMobileNetV2(gate_indices=gate_indices)


def test_gates_start_with_zero_offsets_after_host_init():
    """The host's Kaiming init must not leave the gates' offset convs random."""
    for model in (DASResNet(18), DASMobileNetV2()):
        model.init_weights()
        for gate in model.stage_gates():
            assert gate.deform_conv.conv_offset.weight.abs().sum() == 0


def test_framework_flavours_follow_their_defaults(scope):
    from mmdet.registry import MODELS as DET
    from mmpretrain.registry import MODELS as CLS
    with scope('mmdet'):
        det = DET.build(dict(type='DASResNet', depth=50))
    with scope('mmpretrain'):
        cls = CLS.build(dict(type='DASResNet', depth=50))
        cls_mbv2 = CLS.build(dict(type='DASMobileNetV2'))
    assert isinstance(det, DASResNet) and not isinstance(cls, DASResNet)
    assert det.out_indices == (0, 1, 2, 3) and cls.out_indices == (3, )
    assert len(cls.stage_gates()) == 4
    assert set(det.state_dict()) == set(cls.state_dict())
    assert cls_mbv2.out_indices == (7, ) and len(cls_mbv2.stage_gates()) == 4
    # mmpretrain's layer-wise lr decay knows where a gate sits.
    last_block = len(cls.layer2) - 2  # the gate is the stage's last module
    assert cls.get_layer_depth('backbone.layer2.das_gate.pointwise.weight', 'backbone.') == \
        cls.get_layer_depth(f'backbone.layer2.{last_block}.conv1.weight', 'backbone.')


def test_gradient_reaches_every_gate_in_a_detector_style_forward():
    model = DASResNet(18, deform_impl='torch')
    model.init_weights()
    outs = model(torch.randn(2, 3, 64, 64))
    sum(o.square().mean() for o in outs).backward()
    for gate in model.stage_gates():
        assert gate.gate_norm.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('num_stages', [1, 2, 3, 4])
def test_gate_stages_follow_num_stages_by_default(num_stages):
    model = DASResNet(
        50,
        num_stages=num_stages,
        out_indices=tuple(range(num_stages)),
        strides=(1, 2, 2, 2)[:num_stages],
        dilations=(1, ) * num_stages,
        base_channels=8,
        deform_impl='torch')
    assert len(model.stage_gates()) == num_stages
    outs = model(torch.randn(1, 3, 64, 64))
    assert len(outs) == num_stages


FAMILIES = [  # (scope, DAS type, host type, extra arguments)
    ('mmdet', 'DASResNetV1d', 'ResNetV1d', dict(depth=50)),
    ('mmdet', 'DASResNeXt', 'ResNeXt', dict(depth=101, groups=32, base_width=4)),
    ('mmdet', 'DASRes2Net', 'Res2Net', dict(depth=50)),
    ('mmpretrain', 'DASResNetV1c', 'ResNetV1c', dict(depth=50)),
    ('mmpretrain', 'DASResNetV1d', 'ResNetV1d', dict(depth=50)),
    ('mmpretrain', 'DASResNeXt', 'ResNeXt', dict(depth=50, groups=32, width_per_group=4)),
    ('mmpretrain', 'DASRes2Net', 'Res2Net', dict(depth=50)),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    'scope_name, das_type, host_type, extra', FAMILIES, ids=[f'{f[0]}-{f[1]}' for f in FAMILIES])
def test_new_families_build_from_configs_and_load_a_plain_host_checkpoint(
        scope_name, das_type, host_type, extra, tmp_path, scope):
    from mmengine.registry import MODELS
    with scope(scope_name):
        host = MODELS.build(dict(type=host_type, **extra))
    for p in host.parameters():  # "trained": every tensor differs from a fresh init
        p.data.normal_()
    state = {f'backbone.{k}': v for k, v in host.state_dict().items()}
    torch.save(dict(state_dict=state), tmp_path / 'host.pth')
    init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'host.pth'), prefix='backbone.')
    with scope(scope_name):
        model = MODELS.build(dict(type=das_type, init_cfg=init_cfg, **extra))
    framework = __import__(f'{scope_name}.registry', fromlist=['MODELS'])
    host_class = framework.MODELS.get(host_type)
    assert host_class is not None and type(model).__bases__[-1] is host_class  # extends it
    model.init_weights()
    own = model.state_dict()
    missing = [k for k in own if f'backbone.{k}' not in state]
    assert missing and all('.das_gate.' in k for k in missing)  # only the gates are new
    for key, value in own.items():
        if key not in missing:
            assert torch.equal(value, state[f'backbone.{key}']), key
    assert [g.in_channels for g in model.stage_gates()] == [256, 512, 1024, 2048]


def test_new_families_refuse_a_checkpoint_of_another_depth(tmp_path):
    from mmdet.models.backbones import ResNeXt
    torch.save(ResNeXt(depth=50, groups=32, base_width=4).state_dict(), tmp_path / 'x50.pth')
    model = DASResNeXt(
        depth=101,
        groups=32,
        base_width=4,
        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'x50.pth')))
    with pytest.raises(ValueError, match=r"x50.pth' does not fit DASResNeXt: .*tensors missing"):
        model.init_weights()
    with pytest.raises(ValueError, match=r'depth must be one of \(50, 101, 152\), got 18'):
        DASResNeXt(depth=18)


def test_the_gate_layer_is_mmcv_modulated_deform_conv_and_dcn_lr_mult_reaches_it(scope):
    """mmengine's optimizer constructor finds DCN layers by isinstance of mmcv's classes."""
    from mmcv.ops import ModulatedDeformConv2d
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile('configs/das/faster-rcnn_das-r50_fpn_1x_coco.py')
    cfg.model.backbone.init_cfg = None
    cfg.optim_wrapper.paramwise_cfg = dict(dcn_offset_lr_mult=0.1)
    with scope('mmdet'):
        model = MODELS.build(cfg.model)
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
    assert all(
        isinstance(g.deform_conv, ModulatedDeformConv2d) for g in model.backbone.stage_gates())
    lr_of = {id(p): group['lr'] for group in optim.optimizer.param_groups for p in group['params']}
    names = dict(model.named_parameters())
    offsets = [n for n in names if '.das_gate.deform_conv.conv_offset.' in n]
    assert len(offsets) == 8  # weight and bias of four gates
    for name in offsets:
        assert lr_of[id(names[name])] == pytest.approx(0.02 * 0.1), name
    assert lr_of[id(names['backbone.layer1.das_gate.deform_conv.weight'])] == 0.02
    assert lr_of[id(names['backbone.layer2.0.conv1.weight'])] == 0.02
