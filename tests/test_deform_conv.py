"""Parity of the pure-PyTorch modulated deformable conv with mmcv's compiled kernel."""
import pytest
import torch

from mmdas.ops import (ModulatedDeformConv2dPack, check_impl, mmcv_ops_available,
                       modulated_deform_conv2d, modulated_deform_conv2d_torch, resolve_impl)

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
    k = case['k']
    out_h = (case['h'] + 2 * case['padding'] - case['dilation'] * (k - 1) - 1) // case['stride'] + 1
    out_w = (case['w'] + 2 * case['padding'] - case['dilation'] * (k - 1) - 1) // case['stride'] + 1
    dg, taps = case['dg'], k * k
    t = dict(dtype=torch.float64)
    x = torch.randn(batch, case['c_in'], case['h'], case['w'], generator=g, **t)
    # Large offsets so that many taps land outside the map and across its border.
    offset = torch.randn(batch, 2 * dg * taps, out_h, out_w, generator=g, **t) * offset_scale
    mask = torch.rand(batch, dg * taps, out_h, out_w, generator=g, **t)
    weight = torch.randn(case['c_out'], case['c_in'] // case['groups'], k, k, generator=g, **t)
    bias = torch.randn(case['c_out'], generator=g, **t)
    return [tensor.requires_grad_() for tensor in (x, offset, mask, weight, bias)]


def run(fn, inputs, case, **kwargs):
    out = fn(*inputs, case['stride'], case['padding'], case['dilation'], case['groups'],
             case['dg'], **kwargs)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1),
                           dtype=out.dtype)
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


@pytest.mark.parametrize('batch, dg', [(1, 1), (2, 2)])
@pytest.mark.parametrize('c_out, h, w', [(6, 11, 9), (64, 3, 2)])  # per image / per chunk product
@pytest.mark.parametrize('positions_per_chunk', [1, 4, 6, 8])  # parts of an image, whole images
def test_position_chunking_gives_the_same_result_and_gradients(batch, dg, c_out, h, w,
                                                               positions_per_chunk):
    case = dict(c_in=4, c_out=c_out, h=h, w=w, k=3, stride=1, padding=1, dilation=1, groups=2,
                dg=dg)
    inputs = make_inputs(case, batch=batch)
    out_ref, grads_ref = run(modulated_deform_conv2d_torch, inputs, case)
    # A chunk holds max_elements // (c_in * 9) output positions.
    out, grads = run(modulated_deform_conv2d_torch, inputs, case,
                     max_elements=positions_per_chunk * 4 * 9)
    torch.testing.assert_close(out, out_ref)
    for grad, grad_ref in zip(grads, grads_ref):
        torch.testing.assert_close(grad, grad_ref)


def test_zero_offsets_and_unit_mask_equal_a_dense_conv():
    case = dict(c_in=4, c_out=6, h=7, w=8, k=3, stride=2, padding=2, dilation=2, groups=2, dg=2)
    x, offset, mask, weight, bias = (t.detach() for t in make_inputs(case))
    out = modulated_deform_conv2d_torch(x, torch.zeros_like(offset), torch.ones_like(mask),
                                        weight, bias, 2, 2, 2, 2, 2)
    ref = torch.nn.functional.conv2d(x, weight, bias, 2, 2, 2, 2)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize('impl', ['torch', pytest.param('mmcv', marks=needs_mmcv_ops)])
def test_pack_module_starts_as_plain_conv_and_learns_offsets(impl):
    torch.manual_seed(0)
    layer = ModulatedDeformConv2dPack(4, 6, 3, padding=1, impl=impl)
    x = torch.randn(2, 4, 9, 9)
    out = layer(x)
    # Offsets start at zero and the mask at sigmoid(0) = 0.5.
    ref = torch.nn.functional.conv2d(x, layer.weight * 0.5, layer.bias, padding=1)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    out.square().sum().backward()
    assert layer.conv_offset.weight.grad.abs().sum() > 0
    assert layer.weight.grad.abs().sum() > 0


def test_pack_state_dict_keys_match_mmcv():
    layer = ModulatedDeformConv2dPack(4, 6, 3, padding=1, impl='torch')
    assert set(layer.state_dict()) == {'weight', 'bias', 'conv_offset.weight', 'conv_offset.bias'}
    if mmcv_ops_available():
        from mmcv.ops import ModulatedDeformConv2dPack as MMCVPack
        ref = MMCVPack(4, 6, 3, padding=1)
        assert {k: v.shape for k, v in ref.state_dict().items()} == \
            {k: v.shape for k, v in layer.state_dict().items()}


def test_auto_picks_torch_on_cpu_and_rejects_unknown_impl():
    assert resolve_impl('auto', torch.device('cpu')) == 'torch'
    assert resolve_impl('torch', torch.device('cpu')) == 'torch'
    with pytest.raises(ValueError, match=r"deform_impl must be one of \('auto', 'mmcv', 'torch'\), got 'cuda'"):
        check_impl('cuda')


def test_asking_for_mmcv_without_ops_names_the_argument(monkeypatch):
    import mmdas.ops.modulated_deform_conv as mdc
    monkeypatch.setattr(mdc, '_mmcv_ops_error', lambda: 'ImportError: no _ext')
    with pytest.raises(RuntimeError, match=r"deform_impl='mmcv' needs mmcv compiled with its ops"):
        ModulatedDeformConv2dPack(4, 4, impl='mmcv')
    # 'auto' and 'torch' still work without compiled ops.
    layer = ModulatedDeformConv2dPack(4, 4, impl='auto')
    assert layer(torch.randn(1, 4, 5, 5)).shape == (1, 4, 5, 5)


def test_bad_shapes_raise_named_errors():
    x = torch.randn(1, 4, 5, 5)
    w = torch.randn(6, 4, 3, 3)
    with pytest.raises(ValueError, match='offset must have shape'):
        modulated_deform_conv2d(x, torch.zeros(1, 17, 5, 5), torch.ones(1, 9, 5, 5), w,
                                padding=1, impl='torch')
    with pytest.raises(ValueError, match='x has 4 channels'):
        modulated_deform_conv2d(x, torch.zeros(1, 18, 5, 5), torch.ones(1, 9, 5, 5),
                                torch.randn(6, 3, 3, 3), padding=1, impl='torch')
    with pytest.raises(TypeError, match='x must be float32 or float64.*got torch.bfloat16'):
        modulated_deform_conv2d(x.bfloat16(), torch.zeros(1, 18, 5, 5), torch.ones(1, 9, 5, 5),
                                w, padding=1, impl='torch')
    with pytest.raises(ValueError, match='max_elements must be a positive number'):
        modulated_deform_conv2d_torch(x, torch.zeros(1, 18, 5, 5), torch.ones(1, 9, 5, 5), w,
                                      padding=1, max_elements=0)


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
