"""DASGate: shapes, values, gradients, registry and bad input."""
import pytest
import torch

import mmdas  # noqa: F401  (registers everything)
from mmdas.models import DASGate
from mmdas.models.plugins import das_hidden_channels
from utils import assert_every_parameter_learns


def paper_gate(gate: DASGate, x: torch.Tensor) -> torch.Tensor:
    """The paper's equations composed from torch.nn.functional and torchvision's DCNv2 with the
    gate's weights: Xc = GELU(IN(DSC(X))), A = sigmoid(LN(DCN(Xc))), Y = X * A."""
    import torch.nn.functional as F
    import torchvision

    def norm(t, groups, weight, bias, eps=1e-5):  # by hand: defined on 1x1 maps too
        n, c, h, w = t.shape
        g = t.reshape(n, groups, -1)
        g = (g -
             g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + eps)
        return g.reshape(n, c, h, w) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)

    c = x.shape[1]
    hidden = gate.pointwise.out_channels
    dsc = F.conv2d(
        F.conv2d(x, gate.depthwise.weight, gate.depthwise.bias, padding=1, groups=c),
        gate.pointwise.weight, gate.pointwise.bias)
    xc = F.gelu(norm(dsc, hidden, gate.compress_norm.weight, gate.compress_norm.bias))
    dcn = gate.deform_conv
    o1, o2, logits = torch.chunk(
        F.conv2d(xc, dcn.conv_offset.weight, dcn.conv_offset.bias, padding=1), 3, dim=1)
    sampled = torchvision.ops.deform_conv2d(
        xc, torch.cat((o1, o2), 1), dcn.weight, dcn.bias, padding=1, mask=torch.sigmoid(logits))
    attention = torch.sigmoid(norm(sampled, 1, gate.gate_norm.weight, gate.gate_norm.bias))
    return x * attention


@pytest.mark.parametrize('channels, size', [(1, (5, 7)), (8, (1, 1)), (17, (9, 4)), (64, (13, 11))])
def test_output_has_input_shape_and_follows_the_papers_equations(channels, size):
    torch.manual_seed(0)
    gate = DASGate(channels, deform_impl='torch')
    for p in gate.deform_conv.conv_offset.parameters():  # offsets as after training
        torch.nn.init.normal_(p, 0, 0.3)
    for norm in (gate.compress_norm, gate.gate_norm):  # affine away from its init
        torch.nn.init.normal_(norm.weight, 1, 0.2)
        torch.nn.init.normal_(norm.bias, 0, 0.2)
    x = torch.randn(2, channels, *size)
    y = gate(x)
    assert y.shape == x.shape
    a = gate.attention(x)
    assert ((a > 0) & (a < 1)).all()
    with torch.no_grad():
        torch.testing.assert_close(y, paper_gate(gate, x), rtol=1e-5, atol=1e-5)


def test_inference_forward_equals_training_forward_and_leaves_the_input_alone():
    torch.manual_seed(0)
    gate = DASGate(16, deform_impl='torch')
    torch.nn.init.normal_(gate.deform_conv.conv_offset.weight, 0, 0.1)
    x = torch.randn(2, 16, 9, 7)
    x_before = x.clone()
    y_train = gate(x.clone().requires_grad_())
    with torch.no_grad():  # the inference path scales the attention map in place
        y_inference = gate(x)
    torch.testing.assert_close(y_inference, y_train.detach())
    assert torch.equal(x, x_before)


def test_structure_follows_the_paper():
    gate = DASGate(256, alpha=0.2)
    assert das_hidden_channels(256, 0.2) == 51
    assert gate.depthwise.groups == 256 and gate.depthwise.kernel_size == (3, 3)
    assert gate.pointwise.out_channels == 51 and gate.pointwise.kernel_size == (1, 1)
    assert gate.compress_norm.num_groups == 51  # InstanceNorm
    assert gate.deform_conv.in_channels == 51 and gate.deform_conv.out_channels == 256
    assert gate.deform_conv.kernel_size == (3, 3)
    assert gate.gate_norm.num_groups == 1  # LayerNorm over (C, H, W)
    assert das_hidden_channels(3, 0.2) == 1  # never zero channels
    # Offsets and mask logits start at zero.
    assert gate.deform_conv.conv_offset.weight.abs().sum() == 0


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    gate = DASGate(16, deform_impl='torch')
    x = torch.randn(2, 16, 9, 9, requires_grad=True)
    # Train a step so that offsets become non-zero, then check every gradient again.
    opt = torch.optim.SGD(gate.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        gate(x).square().mean().backward()
        assert_every_parameter_learns(gate.named_parameters())
        opt.step()
    assert x.grad.abs().sum() > 0


def test_mmcv_and_torch_implementations_agree_inside_the_gate():
    pytest.importorskip('mmcv.ops')
    torch.manual_seed(0)
    gate = DASGate(12, deform_impl='torch')
    with torch.no_grad():  # non-zero offsets, so the deformable sampling matters
        gate.deform_conv.conv_offset.weight.normal_(0, 0.5)
    x = torch.randn(2, 12, 8, 10)
    ref = gate(x)
    gate.deform_conv.impl = 'mmcv'
    torch.testing.assert_close(gate(x), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('alpha', [0, -0.1, 1.5, float('nan'), '0.2', True])
def test_bad_alpha_is_rejected_with_its_name(alpha):
    with pytest.raises(ValueError, match=r'alpha must be a number in \(0, 1\], got'):
        DASGate(16, alpha=alpha)


@pytest.mark.parametrize('channels', [0, -4, 2.5, None])
def test_bad_channel_count_is_rejected(channels):
    with pytest.raises(ValueError, match='in_channels must be a positive int, got'):
        DASGate(channels)


def test_wrong_input_channels_is_rejected():
    gate = DASGate(16)
    with pytest.raises(
            ValueError,
            match=r'DASGate\(in_channels=16\) expects an \(N, 16, H, W\) '
            r'tensor, got shape \(1, 8, 5, 5\)'):
        gate(torch.randn(1, 8, 5, 5))


def test_bad_deform_impl_is_rejected():
    with pytest.raises(ValueError, match='deform_impl must be one of'):
        DASGate(16, deform_impl='fast')


def test_builds_by_name_from_every_scope_and_as_plugin(scope):
    from mmcv.cnn import build_plugin_layer
    from mmdet.registry import MODELS as DET
    from mmengine.registry import MODELS as ROOT
    from mmpretrain.registry import MODELS as CLS
    cfg = dict(type='DASGate', in_channels=32, alpha=0.25)
    for registry in (ROOT, DET, CLS):
        with scope(registry.scope):
            gate = registry.build(cfg)
        assert isinstance(gate, DASGate) and gate.alpha == 0.25
    name, layer = build_plugin_layer(dict(type='DASGate', alpha=0.25), postfix='_x', in_channels=32)
    assert name == 'das_gate_x' and isinstance(layer, DASGate)
    assert layer(torch.randn(1, 32, 6, 6)).shape == (1, 32, 6, 6)
