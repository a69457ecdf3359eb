"""The pure-PyTorch modulated deformable conv against mmcv's compiled kernel and torchvision."""
import math
import os
import random

import pytest
import torch
import torchvision
from torch.nn.modules.utils import _pair

from mmdas.ops import (DispatchingDeformConv2dPack, check_impl, mmcv_ops_available,
                       modulated_deform_conv2d, modulated_deform_conv2d_torch, resolve_impl)
from mmdas.ops.deform_conv_torch import ConvGeometry, plan_chunks

needs_mmcv_ops = pytest.mark.skipif(not mmcv_ops_available(), reason='mmcv built without ops')

CASES = [
    # (c_in, c_out, h, w, kernel, stride, padding, dilation, groups, deform_groups)
    dict(c_in=4, c_out=6, h=7, w=9, k=3, stride=1, padding=1, dilation=1, groups=1, dg=1),
    dict(c_in=4, c_out=6, h=8, w=7, k=3, stride=2, padding=1, dilation=1, groups=1, dg=1),
    dict(c_in=4, c_out=4, h=9, w=9, k=3, stride=1, padding=2, dilation=2, groups=1, dg=1),
    dict(c_in=8, c_out=4, h=6, w=5, k=3, stride=1, padding=1, dilation=1, groups=2, dg=1),
    dict(c_in=8, c_out=6, h=6, w=6, k=3, stride=1, padding=1, dilation=1, groups=1, dg=2),
    dict(c_in=8, c_out=4, h=7, w=6, k=3, stride=2, padding=2, dilation=2, groups=2, dg=4),
    dict(c_in=3, c_out=5, h=1, w=1, k=3, stride=1, padding=1, dilation=1, groups=1, dg=1),
    dict(c_in=3, c_out=2, h=1, w=6, k=3, stride=1, padding=1, dilation=1, groups=1, dg=1),
    dict(c_in=2, c_out=3, h=5, w=6, k=1, stride=1, padding=0, dilation=1, groups=1, dg=1),
    # More out channels than output positions (a late gate): the samples are reordered to the
    # weight's column order instead of the weight to theirs.
    dict(c_in=8, c_out=64, h=3, w=2, k=3, stride=1, padding=1, dilation=1, groups=2, dg=2),
]


def make_inputs(case, batch=2, offset_scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    (kh, kw), (sh, sw) = _pair(case['k']), _pair(case['stride'])
    (ph, pw), (dh, dw) = _pair(case['padding']), _pair(case['dilation'])
    out_h = (case['h'] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (case['w'] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    dg, taps = case['dg'], kh * kw
    t = dict(dtype=torch.float64)
    x = torch.randn(batch, case['c_in'], case['h'], case['w'], generator=g, **t)
    # Large offsets so that many taps land outside the map and across its border.
    offset = torch.randn(batch, 2 * dg * taps, out_h, out_w, generator=g, **t) * offset_scale
    mask = torch.rand(batch, dg * taps, out_h, out_w, generator=g, **t)
    weight = torch.randn(case['c_out'], case['c_in'] // case['groups'], kh, kw, generator=g, **t)
    bias = torch.randn(case['c_out'], generator=g, **t)
    return [tensor.requires_grad_() for tensor in (x, offset, mask, weight, bias)]


def run(fn, inputs, case, **kwargs):
    out = fn(*inputs, case['stride'], case['padding'], case['dilation'], case['groups'], case['dg'],
             **kwargs)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    grads = torch.autograd.grad(out, inputs, grad_out)
    return out, grads


@needs_mmcv_ops
@pytest.mark.parametrize('batch', [1, 2])  # batch 1, deform_groups 1: taps in the batch dim
@pytest.mark.parametrize('case', CASES, ids=lambda c: '-'.join(f'{k}{v}' for k, v in c.items()))
def test_torch_path_matches_mmcv_kernel_forward_and_backward(case, batch):
    from mmcv.ops import modulated_deform_conv2d as mmcv_dcn
    inputs = make_inputs(case, batch=batch)
    # Some sampling positions must fall outside the map for this test to mean anything.
    assert inputs[1].abs().max() > max(case['h'], case['w']) / 2
    out_ref, grads_ref = run(mmcv_dcn, inputs, case)
    out, grads = run(modulated_deform_conv2d_torch, inputs, case)
    torch.testing.assert_close(out, out_ref, rtol=1e-9, atol=1e-9)
    with torch.no_grad():  # inference scales the samples in place: same result
        out_inference = modulated_deform_conv2d_torch(*inputs, case['stride'], case['padding'],
                                                      case['dilation'], case['groups'], case['dg'])
    torch.testing.assert_close(out_inference, out_ref, rtol=1e-9, atol=1e-9)
    for name, grad, grad_ref in zip(('input', 'offset', 'mask', 'weight', 'bias'), grads,
                                    grads_ref):
        torch.testing.assert_close(grad, grad_ref, rtol=1e-7, atol=1e-7, msg=name)


@pytest.mark.parametrize('batch', [1, 3])
@pytest.mark.parametrize('c_out, h, w', [(6, 11, 9), (64, 3, 2)])
@pytest.mark.parametrize('max_elements', [1, 40, 150, 300, 10**9])
def test_chunking_gives_the_same_result_and_gradients(batch, c_out, h, w, max_elements):
    """Runs of output rows of one image (down to a single row), whole images, several images
    per chunk and the whole batch at once all give the same output and gradients."""
    case = dict(c_in=4, c_out=c_out, h=h, w=w, k=3, stride=1, padding=1, dilation=1, groups=2, dg=2)
    inputs = make_inputs(case, batch=batch)
    out_ref, grads_ref = run(modulated_deform_conv2d_torch, inputs, case)
    out, grads = run(modulated_deform_conv2d_torch, inputs, case, max_elements=max_elements)
    torch.testing.assert_close(out, out_ref)
    for grad, grad_ref in zip(grads, grads_ref):
        torch.testing.assert_close(grad, grad_ref)


@pytest.mark.parametrize(
    'max_elements, expected',
    [
        (10**9, [(0, 3, 0, 5)]),  # the whole batch in one chunk
        (2 * 5 * 180, [(0, 2, 0, 5), (2, 3, 0, 5)]),  # two images, then one
        (5 * 180, [(0, 1, 0, 5), (1, 2, 0, 5), (2, 3, 0, 5)]),
        (2 * 180, [(i, i + 1, r, min(5, r + 2)) for i in range(3) for r in (0, 2, 4)]),  # rows
        (1, [(i, i + 1, r, r + 1) for i in range(3) for r in range(5)]),  # at least one row each
    ])
def test_chunks_are_whole_images_or_runs_of_rows(max_elements, expected):
    # 5 output rows of 5 positions x 9 taps x 4 channels = 180 values per row
    geometry = ConvGeometry(3, 4, (5, 5), 6, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1)
    chunks = plan_chunks(geometry, max_elements)
    assert [(c.first_image, c.stop_image, c.first_row, c.stop_row) for c in chunks] == expected
    covered = [p for c in chunks for p in range(*c.points(geometry).indices(10**6))]
    assert covered == list(range(3 * 5 * 5 * 9))  # every sampled point once, in order


def random_case(rng: random.Random) -> dict:
    """A DCNv2 call with randomly drawn sizes, including 1-pixel maps and non-square kernels."""
    groups, dg = rng.choice([1, 1, 2, 3]), rng.choice([1, 1, 2, 4])
    c_in = groups * dg * rng.randint(1, 3) // math.gcd(groups, dg)
    kh, kw = rng.choice([(1, 1), (3, 3), (3, 3), (2, 2), (1, 3), (3, 1), (5, 3), (4, 4)])
    stride, dilation = (rng.randint(1, 3), rng.randint(1, 3)), (rng.randint(1,
                                                                            2), rng.randint(1, 2))
    padding = (rng.randint(0, kh), rng.randint(0, kw))
    h, w = rng.choice([1, 2, 5, 9]), rng.choice([1, 3, 7])
    # the output must not be empty
    h = max(h, dilation[0] * (kh - 1) + 1 - 2 * padding[0])
    w = max(w, dilation[1] * (kw - 1) + 1 - 2 * padding[1])
    return dict(
        c_in=c_in,
        c_out=groups * rng.randint(1, 4),
        h=h,
        w=w,
        k=(kh, kw),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        dg=dg,
        batch=rng.randint(1, 3))


def torchvision_dcn(x, offset, mask, weight, bias, stride, padding, dilation, groups, dg):
    """torchvision's DCNv2 with mmcv's argument order (it infers groups from the shapes)."""
    assert weight.shape[1] * groups == x.shape[1] and offset.shape[1] % dg == 0
    return torchvision.ops.deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask)


@pytest.mark.parametrize('seed', range(40))
def test_torch_path_matches_torchvision_on_random_shapes(seed):
    """An implementation nobody here wrote, in float64: forward and all five gradients.

    Random (non-integer) offsets: there torchvision and mmcv agree. They differ only in the
    offset gradient of a tap sitting exactly at coordinate -1, where we follow mmcv (see
    ``test_torchvision_differs_only_at_taps_exactly_on_minus_one`` in test_deform_conv_edges.py).
    """
    case = random_case(random.Random(seed))
    inputs = make_inputs(case, batch=case['batch'], seed=seed)
    out_ref, grads_ref = run(torchvision_dcn, inputs, case)
    out, grads = run(modulated_deform_conv2d_torch, inputs, case)
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-10)
    for name, grad, grad_ref in zip(('input', 'offset', 'mask', 'weight', 'bias'), grads,
                                    grads_ref):
        torch.testing.assert_close(grad, grad_ref, rtol=1e-9, atol=1e-9, msg=name)


@pytest.mark.parametrize('impl', ['torch', pytest.param('mmcv', marks=needs_mmcv_ops)])
def test_channels_last_inputs_give_the_same_result(impl):
    """mmcv's kernels read NCHW memory: the dispatch must not hand them channels-last tensors."""
    case = dict(c_in=6, c_out=4, h=7, w=5, k=3, stride=1, padding=1, dilation=1, groups=1, dg=2)
    inputs = [t.detach() for t in make_inputs(case)]
    ref = modulated_deform_conv2d(*inputs, padding=1, deform_groups=2, impl=impl)
    x, offset, mask = (t.contiguous(memory_format=torch.channels_last) for t in inputs[:3])
    out = modulated_deform_conv2d(
        x, offset, mask, *inputs[3:], padding=1, deform_groups=2, impl=impl)
    torch.testing.assert_close(out, ref)


def test_zero_offsets_and_unit_mask_equal_a_dense_conv():
    case = dict(c_in=4, c_out=6, h=7, w=8, k=3, stride=2, padding=2, dilation=2, groups=2, dg=2)
    x, offset, mask, weight, bias = (t.detach() for t in make_inputs(case))
    out = modulated_deform_conv2d_torch(x, torch.zeros_like(offset), torch.ones_like(mask), weight,
                                        bias, 2, 2, 2, 2, 2)
    ref = torch.nn.functional.conv2d(x, weight, bias, 2, 2, 2, 2)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize('impl', ['torch', pytest.param('mmcv', marks=needs_mmcv_ops)])
def test_pack_module_starts_as_plain_conv_and_learns_offsets(impl):
    torch.manual_seed(0)
    layer = DispatchingDeformConv2dPack(4, 6, 3, padding=1, impl=impl)
    x = torch.randn(2, 4, 9, 9)
    out = layer(x)
    # Offsets start at zero and the mask at sigmoid(0) = 0.5.
    ref = torch.nn.functional.conv2d(x, layer.weight * 0.5, layer.bias, padding=1)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    out.square().sum().backward()
    assert layer.conv_offset.weight.grad.abs().sum() > 0
    assert layer.weight.grad.abs().sum() > 0


def test_pack_state_dict_keys_match_mmcv():
    layer = DispatchingDeformConv2dPack(4, 6, 3, padding=1, impl='torch')
    assert set(layer.state_dict()) == {'weight', 'bias', 'conv_offset.weight', 'conv_offset.bias'}
    if mmcv_ops_available():
        from mmcv.ops import ModulatedDeformConv2dPack as MMCVPack
        ref = MMCVPack(4, 6, 3, padding=1)
        assert {k: v.shape for k, v in ref.state_dict().items()} == \
            {k: v.shape for k, v in layer.state_dict().items()}


def test_auto_picks_torch_on_cpu_and_rejects_unknown_impl():
    assert resolve_impl('auto', torch.device('cpu')) == 'torch'
    assert resolve_impl('torch', torch.device('cpu')) == 'torch'
    with pytest.raises(
            ValueError,
            match=r"deform_impl must be one of \('auto', 'mmcv', 'torch'\), got 'cuda'"):
        check_impl('cuda')


def test_asking_for_mmcv_without_ops_names_the_argument(monkeypatch):
    import mmdas.ops.modulated_deform_conv as mdc
    monkeypatch.setattr(mdc, '_mmcv_ops_error', lambda: 'ImportError: no _ext')
    with pytest.raises(RuntimeError, match=r"deform_impl='mmcv' needs mmcv compiled with its ops"):
        DispatchingDeformConv2dPack(4, 4, impl='mmcv')
    # 'auto' and 'torch' still work without compiled ops.
    layer = DispatchingDeformConv2dPack(4, 4, impl='auto')
    assert layer(torch.randn(1, 4, 5, 5)).shape == (1, 4, 5, 5)


def test_bad_shapes_raise_named_errors():
    x = torch.randn(1, 4, 5, 5)
    w = torch.randn(6, 4, 3, 3)
    with pytest.raises(ValueError, match='offset must have shape'):
        modulated_deform_conv2d(
            x, torch.zeros(1, 17, 5, 5), torch.ones(1, 9, 5, 5), w, padding=1, impl='torch')
    with pytest.raises(ValueError, match='x has 4 channels'):
        modulated_deform_conv2d(
            x,
            torch.zeros(1, 18, 5, 5),
            torch.ones(1, 9, 5, 5),
            torch.randn(6, 3, 3, 3),
            padding=1,
            impl='torch')
    with pytest.raises(TypeError, match='x must be float32 or float64.*got torch.bfloat16'):
        # the raw pure-PyTorch function; the dispatch computes half precision in float32
        modulated_deform_conv2d_torch(
            x.bfloat16(), torch.zeros(1, 18, 5, 5), torch.ones(1, 9, 5, 5), w, padding=1)
    with pytest.raises(ValueError, match='max_elements must be a positive number'):
        modulated_deform_conv2d_torch(
            x, torch.zeros(1, 18, 5, 5), torch.ones(1, 9, 5, 5), w, padding=1, max_elements=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_auto_uses_mmcv_kernel_and_matches_torch_path():
    case = CASES[5]
    inputs = [t.detach().float().cuda().requires_grad_() for t in make_inputs(case)]
    if mmcv_ops_available():
        assert resolve_impl('auto', inputs[0].device) == 'mmcv'
    out, grads = run(modulated_deform_conv2d, inputs, case)
    out_ref, grads_ref = run(modulated_deform_conv2d_torch, inputs, case)
    torch.testing.assert_close(out, out_ref, rtol=1e-4, atol=1e-4)
    for grad, grad_ref in zip(grads, grads_ref):
        torch.testing.assert_close(grad, grad_ref, rtol=1e-3, atol=1e-3)


def test_nan_offsets_stay_in_their_own_output_position():
    """A NaN offset must not index outside the input (no crash): only its position is NaN."""
    case = dict(c_in=4, c_out=6, h=7, w=9, k=3, stride=1, padding=1, dilation=1, groups=1, dg=1)
    x, offset, mask, weight, bias = [t.detach() for t in make_inputs(case, batch=1)]
    offset[0, 0, 3, 4] = float('nan')
    offset[0, 1, 5, 2] = float('inf')
    out = modulated_deform_conv2d_torch(x, offset, mask, weight, bias, padding=1)
    bad = torch.zeros(7, 9, dtype=torch.bool)
    bad[3, 4] = bad[5, 2] = True
    assert out[0, :, bad].isnan().all()
    assert out[0, :, ~bad].isfinite().all()


@pytest.mark.skipif(
    'ATEN_CPU_CAPABILITY' not in os.environ,
    reason='runs under make test\'s '
    'second pass (ATEN_CPU_CAPABILITY=default)')
def test_the_cpu_kernels_are_the_ones_the_environment_asks_for():
    """The second pass of ``make test`` computes with the kernels it names, not this CPU's."""
    asked = os.environ['ATEN_CPU_CAPABILITY'].upper()
    assert torch.backends.cpu.get_cpu_capability() == asked
