"""Parameter and multiply-add counts that include the deformable conv."""
import pytest
import torch
import torch.nn as nn

import mmdas  # noqa: F401
from mmdas.analysis import analyze
from mmdas.models import DASGate
from mmdas.ops import DispatchingDeformConv2dPack, mmcv_ops_available


@pytest.mark.parametrize('impl', [
    'torch',
    pytest.param(
        'mmcv', marks=pytest.mark.skipif(not mmcv_ops_available(), reason='mmcv built without ops'))
])
def test_deformable_conv_counted_like_a_hand_computation(impl):
    layer = DispatchingDeformConv2dPack(4, 6, 3, stride=2, padding=1, groups=2, impl=impl)
    c = analyze(layer, torch.randn(1, 4, 9, 9))
    out = 5 * 5  # 9x9, stride 2, padding 1
    # C_out * C_in/groups * k*k * H_out*W_out, plus 4 MACs per bilinear sample of C_in * k*k
    dcn = 6 * (4 // 2) * 9 * out + 4 * 4 * 9 * out
    offset_conv = 27 * 4 * 9 * out  # 3 * 9 channels of offsets and mask logits
    assert c.deform_macs == dcn
    assert c.macs == dcn + offset_conv
    assert c.deform_params == 6 * 2 * 9 + 6
    assert c.params == c.deform_params + 27 * 4 * 9 + 27
    assert c.paper_macs == offset_conv and c.paper_params == 27 * 4 * 9 + 27


class ConvThenGate(nn.Sequential):
    """A conv and a gate; like a gated backbone it lists its gate (how analysis finds gates)."""

    def stage_gates(self):
        return [self[1]]


def test_gate_share_and_paper_comparable_figure():
    model = ConvThenGate(
        nn.Conv2d(3, 20, 3, padding=1), DASGate(20, alpha=0.25, deform_impl='torch'))
    c = analyze(model, torch.randn(1, 3, 8, 8))
    hw = 64
    dsc = 20 * 9 * hw + 20 * 5 * hw  # depthwise 3x3 + pointwise 20 -> 5
    offsets = 27 * 5 * 9 * hw
    dcn = 20 * 5 * 9 * hw + 4 * 5 * 9 * hw  # conv + bilinear sampling of the 5 hidden channels
    assert c.deform_macs == dcn
    norms = 5 * (5 + 20) * hw  # mmengine counts GroupNorm as 5 per element
    assert c.gate_macs == dsc + norms + offsets + dcn
    assert c.macs == 3 * 20 * 9 * hw + c.gate_macs
    gate_params = sum(p.numel() for p in model[1].parameters())
    assert c.gate_params == gate_params
    assert c.paper_params == c.params - (20 * 5 * 9 + 20)
    assert c.gate_types == ('DASGate', )


@pytest.mark.parametrize('gate, expected', [
    (dict(type='CBAMGate'), ('CBAMGate', )),
    (dict(type='ContextBlock', ratio=1. / 16), ('ContextBlock', )),
])
def test_any_configured_gate_is_counted_as_the_gates_share(gate, expected):
    """get_flops on a CBAM or GC config reports those gates, not "DAS gates 0.00 M"."""
    from mmdas.models import DASResNet
    model = DASResNet(18, gate=gate)
    c = analyze(model, torch.randn(1, 3, 64, 64))
    assert c.gate_types == expected
    assert c.gate_params == sum(p.numel() for g in model.stage_gates() for p in g.parameters())
    assert c.gate_macs > 0


def test_plugins_in_a_host_resnet_are_found_as_gates():
    from utils import plugin_resnet
    model = plugin_resnet(stages=(False, False, True, True))
    c = analyze(model, torch.randn(1, 3, 64, 64))
    assert c.gate_types == ('DASGate', )
    assert c.gate_params == sum(p.numel() for n, p in model.named_parameters() if '.das_gate.' in n)
