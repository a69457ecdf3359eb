"""The deformable conv at its edges, against mmcv's kernel (the op a GPU user trains with).

Sampling positions on the pixel grid and exactly on the border (a fresh DAS gate samples there),
every combination of tensors that need a gradient, chunked and not, autocast and half-precision
models, the choice 'auto' makes, and the FLOP counter's reading of mmcv's functions.
"""
import itertools

import pytest
import torch
import torchvision

from mmdas.ops import (DispatchingDeformConv2dPack, choose_impl, mmcv_ops_available,
                       modulated_deform_conv2d, modulated_deform_conv2d_torch)

needs_mmcv_ops = pytest.mark.skipif(not mmcv_ops_available(), reason='mmcv built without ops')
NAMES = ('input', 'offset', 'mask', 'weight', 'bias')


def case(c_in, c_out, h, w, k=3, stride=1, padding=1, dilation=1, groups=1, dg=1) -> dict:
    """One deformable-conv call's sizes, as the other deformable-conv tests name them."""
    return dict(
        c_in=c_in,
        c_out=c_out,
        h=h,
        w=w,
        k=k,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        dg=dg)


CASES = [
    case(4, 5, 6, 6),
    case(4, 6, 8, 7, stride=2),
    case(4, 4, 9, 8, padding=2, dilation=2),
    case(8, 4, 6, 5, groups=2),
    case(8, 6, 5, 7, stride=2, padding=2, dilation=2, groups=2, dg=4),
    case(3, 5, 1, 1),  # a 1x1 map: every tap on the border
    case(3, 2, 1, 6),
]


def out_size(size, k, stride, padding, dilation):
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def border_targets(size):
    """Coordinates on and around both borders of an axis of ``size`` pixels."""
    return [-2.0, -1.5, -1.0, -0.5, 0.0, size - 1.5, size - 1.0, size - 0.5, size, size + 1.0]


def sampling_offsets(case, batch, kind, generator):
    """Offsets of one ``kind``: 'zero', 'integer', 'half' (integer + 0.5), 'border' (each tap
    put exactly on a coordinate of :func:`border_targets`, per axis) or 'random'."""
    k, dg = case['k'], case['dg']
    out_h = out_size(case['h'], k, case['stride'], case['padding'], case['dilation'])
    out_w = out_size(case['w'], k, case['stride'], case['padding'], case['dilation'])
    shape = (batch, dg, k * k, 2, out_h, out_w)
    t = dict(dtype=torch.float64)
    if kind == 'zero':
        offset = torch.zeros(shape, **t)
    elif kind in ('integer', 'half'):
        offset = torch.randint(-3, 4, shape, generator=generator).to(torch.float64)
        offset += 0.5 if kind == 'half' else 0.0
    elif kind == 'random':
        offset = torch.randn(shape, generator=generator, **t) * 3
    else:  # 'border': target coordinate minus where the tap reads without an offset
        offset = torch.empty(shape, **t)
        for axis, (size, out) in enumerate(((case['h'], out_h), (case['w'], out_w))):
            taps = torch.arange(k * k) // k if axis == 0 else torch.arange(k * k) % k
            base = (torch.arange(out).view(1, -1) * case['stride'] - case['padding'] +
                    taps.view(-1, 1) * case['dilation']).to(torch.float64)  # (taps, out)
            targets = torch.tensor(border_targets(size), **t)
            pick = torch.randint(len(targets), shape[:3] + (out_h, out_w), generator=generator)
            along = base.view(k * k, out_h, 1) if axis == 0 else base.view(k * k, 1, out_w)
            offset[:, :, :, axis] = targets[pick] - along
    return offset.view(batch, 2 * dg * k * k, out_h, out_w)


def make_inputs(case, batch, kind, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = dict(dtype=torch.float64)
    k, dg = case['k'], case['dg']
    x = torch.randn(batch, case['c_in'], case['h'], case['w'], generator=g, **t)
    offset = sampling_offsets(case, batch, kind, g)
    mask = torch.rand(batch, dg * k * k, *offset.shape[2:], generator=g, **t)
    weight = torch.randn(case['c_out'], case['c_in'] // case['groups'], k, k, generator=g, **t)
    bias = torch.randn(case['c_out'], generator=g, **t)
    return [x, offset, mask, weight, bias]


def forward_backward(fn, inputs, case, needs=(True, ) * 5, **kwargs):
    """Output and the gradients of the inputs flagged in ``needs`` (None for the others)."""
    inputs = [t.detach().clone().requires_grad_(need) for t, need in zip(inputs, needs)]
    out = fn(*inputs, case['stride'], case['padding'], case['dilation'], case['groups'], case['dg'],
             **kwargs)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    wanted = [t for t in inputs if t.requires_grad]
    grads = iter(torch.autograd.grad(out, wanted, grad_out) if wanted else ())
    return out, [next(grads) if need else None for need in needs]


def mmcv_dcn(*args):
    from mmcv.ops import modulated_deform_conv2d
    return modulated_deform_conv2d(*args)


def case_id(case):
    return '-'.join(f'{k}{v}' for k, v in case.items())


@needs_mmcv_ops
@pytest.mark.parametrize('kind', ['zero', 'integer', 'half', 'border', 'random'])
@pytest.mark.parametrize('case', CASES, ids=case_id)
def test_forward_and_all_gradients_equal_mmcv_kernel(case, kind):
    """float64, to rounding: the output and all five gradients, on the grid and the border."""
    inputs = make_inputs(case, batch=2, kind=kind)
    out_ref, grads_ref = forward_backward(mmcv_dcn, inputs, case)
    out, grads = forward_backward(modulated_deform_conv2d_torch, inputs, case)
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-10)
    for name, grad, grad_ref in zip(NAMES, grads, grads_ref):
        torch.testing.assert_close(grad, grad_ref, rtol=1e-9, atol=1e-9, msg=name)


def test_border_offsets_put_taps_exactly_on_both_borders():
    """The 'border' kind really samples at -1 and size-1 on both axes (or the test is moot)."""
    case = CASES[0]
    offset = sampling_offsets(case, 2, 'border',
                              torch.Generator().manual_seed(0)).view(2, 1, 9, 2, 6, 6)
    rows = offset[:, :, :, 0] + (torch.arange(6).view(-1, 1) - 1 +
                                 (torch.arange(9) // 3).view(-1, 1, 1)).to(offset)
    cols = offset[:, :, :, 1] + (torch.arange(6) - 1 +
                                 (torch.arange(9) % 3).view(-1, 1, 1)).to(offset)
    for coordinate in (rows, cols):
        assert (coordinate == -1).any() and (coordinate == 5).any() and (coordinate > 6).any()


def test_torchvision_differs_only_at_taps_exactly_on_minus_one():
    """torchvision differentiates a tap at exactly -1 (``v(0) - v(-1)``), mmcv gives it no
    offset gradient and neither do we. At zero offsets and padding 1 (a fresh DAS gate) those
    are the border taps; every other value and gradient agrees."""
    case = CASES[0]
    inputs = make_inputs(case, batch=1, kind='zero')
    out_tv, grads_tv = forward_backward(
        lambda x, o, m, w, b, s, p, d, g, dg: torchvision.ops.deform_conv2d(x, o, w, b, s, p, d, m),
        inputs, case)
    out, grads = forward_backward(modulated_deform_conv2d_torch, inputs, case)
    torch.testing.assert_close(out, out_tv, rtol=1e-12, atol=1e-12)
    for name in ('input', 'mask', 'weight', 'bias'):
        i = NAMES.index(name)
        torch.testing.assert_close(grads[i], grads_tv[i], rtol=1e-10, atol=1e-10, msg=name)
    # offset channels: (tap, dy/dx); tap (i, j) reads row y - 1 + i, column x - 1 + j
    diff = (grads[1] - grads_tv[1]).abs().view(3, 3, 2, 6, 6)
    on_minus_one = torch.zeros(3, 3, 2, 6, 6, dtype=torch.bool)
    on_minus_one[0, :, 0, 0, :] = True  # top taps of the first row: dy at row -1
    on_minus_one[:, 0, 1, :, 0] = True  # left taps of the first column: dx at column -1
    assert diff[on_minus_one].max() > 1e-3  # torchvision's own convention there
    assert diff[~on_minus_one].max() < 1e-10
    assert (grads[1].view(3, 3, 2, 6, 6)[on_minus_one] == 0).all()  # mmcv's: no gradient


@pytest.mark.parametrize('max_elements', [40, 10**9], ids=['chunked', 'one-chunk'])
@pytest.mark.parametrize(
    'needs',
    list(itertools.product((False, True), repeat=5)),
    ids=lambda n: ''.join('x' if f else '-' for f in n))
def test_every_requires_grad_combination(needs, max_elements):
    """Each gradient asked for equals the one computed with everything requiring grad."""
    case = dict(c_in=4, c_out=6, h=7, w=6, k=3, stride=1, padding=1, dilation=1, groups=2, dg=2)
    inputs = make_inputs(case, batch=3, kind='random')
    out_ref, grads_ref = forward_backward(
        modulated_deform_conv2d_torch, inputs, case, max_elements=max_elements)
    out, grads = forward_backward(
        modulated_deform_conv2d_torch, inputs, case, needs, max_elements=max_elements)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=0)
    for name, need, grad, grad_ref in zip(NAMES, needs, grads, grads_ref):
        if need:
            torch.testing.assert_close(grad, grad_ref, rtol=1e-12, atol=1e-12, msg=name)


def test_frozen_weight_at_the_first_das_r50_gate_shape():
    """The reported crash: batch 4 at 56x56, 51 -> 256, weight and bias frozen, input needs
    a gradient (input saliency, adversarial training, partial fine-tuning)."""
    torch.manual_seed(0)
    layer = DispatchingDeformConv2dPack(51, 256, 3, padding=1, impl='torch')
    layer.weight.requires_grad_(False)
    layer.bias.requires_grad_(False)
    x = torch.randn(4, 51, 56, 56, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad.abs().sum() > 0 and layer.conv_offset.weight.grad is not None


@pytest.mark.parametrize('impl', ['torch', pytest.param('mmcv', marks=needs_mmcv_ops)])
def test_autocast_computes_in_float32_and_returns_autocast_dtype(impl):
    case = dict(c_in=6, c_out=4, h=7, w=5, k=3, stride=1, padding=1, dilation=1, groups=1, dg=2)
    x, offset, mask, weight, bias = (t.float() for t in make_inputs(case, 2, 'random'))
    low = [t.bfloat16() for t in (x, offset, mask)]  # what earlier layers hand over in autocast
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = modulated_deform_conv2d(*low, weight, bias, padding=1, deform_groups=2, impl=impl)
    assert out.dtype == torch.bfloat16  # as a convolution gives under autocast
    # computed in float32 from the bf16 inputs, then rounded once
    ref = modulated_deform_conv2d_torch(*(t.float() for t in low), weight, bias, 1, 1, 1, 1, 2)
    exact = dict(rtol=0, atol=0) if impl == 'torch' else dict(rtol=0.01, atol=0.01)
    torch.testing.assert_close(out, ref.bfloat16(), **exact)
    full = modulated_deform_conv2d_torch(x, offset, mask, weight, bias, 1, 1, 1, 1, 2)
    torch.testing.assert_close(out.float(), full, rtol=0.05, atol=0.1)


def test_gate_trains_under_autocast_and_a_bfloat16_gate_runs_in_eval():
    from mmdas.models import DASGate
    torch.manual_seed(0)
    gate = DASGate(16, deform_impl='torch')
    for p in gate.deform_conv.conv_offset.parameters():  # offsets as after training
        torch.nn.init.normal_(p, 0, 0.1)
    x = torch.randn(2, 16, 12, 12)
    ref = gate(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = gate(x)
    out.float().square().sum().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in gate.parameters())
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)
    half = DASGate(16, deform_impl='torch')
    half.load_state_dict(gate.state_dict())
    half = half.bfloat16().eval()
    with torch.no_grad():
        out = half(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref.detach(), rtol=0.05, atol=0.05)


@pytest.mark.parametrize('backbone', [
    dict(type='mmdet.DASResNet', depth=18),
    dict(type='mmpretrain.DASResNet', depth=18, out_indices=(0, 1, 2, 3)),
    dict(type='mmdet.DASMobileNetV2', out_indices=(1, 2, 4, 7)),
])
def test_das_backbones_train_under_autocast(backbone):
    from mmengine.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(backbone, deform_impl='torch'))
    model.train()
    x = torch.randn(2, 3, 64, 64)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
        loss = sum(o.float().mean() for o in outs)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.isfinite().all() for g in grads)
    model.eval()
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = model(x)
    for a, b in zip(low, ref):  # bf16 keeps about 3 significant digits
        assert (a.float() - b).abs().mean() < 0.05 * b.abs().mean() + 1e-3


@pytest.mark.parametrize('impl, device, ops, cuda, expected', [
    ('auto', 'cpu', True, True, 'torch'),
    ('auto', 'cpu', True, False, 'torch'),
    ('auto', 'cuda', True, True, 'mmcv'),
    ('auto', 'cuda', True, False, 'FORCE_CUDA=1 make install'),
    ('mmcv', 'cuda', True, False, 'FORCE_CUDA=1 make install'),
    ('mmcv', 'cpu', True, False, 'mmcv'),
    ('mmcv', 'cpu', False, False, 'needs mmcv compiled with its ops'),
    ('torch', 'cuda', True, False, 'torch'),
    ('torch', 'cpu', False, False, 'torch'),
])
def test_auto_uses_mmcv_on_cuda_only_when_compiled_with_cuda(impl, device, ops, cuda, expected):
    if expected in ('torch', 'mmcv'):
        assert choose_impl(impl, device, ops, cuda) == expected
    else:
        with pytest.raises(RuntimeError, match=expected) as err:
            choose_impl(impl, device, ops, cuda)
        assert "deform_impl='torch'" in str(err.value)


@needs_mmcv_ops
@pytest.mark.parametrize('bias', [True, False])
def test_flop_counter_reads_mmcv_weight_with_and_without_bias(bias):
    from mmcv.ops import ModulatedDeformConv2d

    from mmdas.analysis import analyze

    class WithGivenOffsets(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.dcn = ModulatedDeformConv2d(4, 6, 3, padding=1, bias=bias)

        def forward(self, x):
            n, _, h, w = x.shape
            return self.dcn(x, x.new_zeros(n, 18, h, w), x.new_ones(n, 9, h, w))

    n, h, w = 2, 5, 7
    counted = analyze(WithGivenOffsets(), torch.randn(n, 3 + 1, h, w)).macs
    positions = n * 9 * h * w  # output positions x taps
    assert counted == positions * 6 * 4 + 4 * positions * 4  # dense conv + 4 per sampled value
