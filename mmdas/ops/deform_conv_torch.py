"""Modulated deformable convolution (DCNv2) in plain PyTorch.

Zhu et al., "Deformable ConvNets v2: More Deformable, Better Results", CVPR 2019.

Same semantics and tensor layout as mmcv's ``modulated_deform_conv2d``: offsets are
``(dy, dx)`` pairs interleaved per kernel tap (taps in row-major order, one block of
``2 * kh * kw`` channels per deformable group), the mask has ``kh * kw`` channels per group,
and a sample falling outside the map reads zeros (bilinear with zero padding).

The whole layer is one batched bilinear sampling of all kernel taps (``grid_sample``), a
multiply by the mask and one matrix multiply against the reshaped weight. The sampled-taps
tensor has ``batch * in_channels * kh * kw * out_h * out_w`` elements; output rows are
processed in chunks so that it never exceeds ``max_elements`` at once (in training each
chunk is recomputed in backward instead of being kept, see ``torch.utils.checkpoint``).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

IntPair = Tuple[int, int]

#: Default bound on the sampled-taps tensor (elements); 2**25 float32 values = 128 MiB.
DEFAULT_MAX_ELEMENTS = 2**25


def _pair(value) -> IntPair:
    return (value, value) if isinstance(value, int) else tuple(value)


def _sample_taps(x: Tensor, offset: Tensor, mask: Tensor, rows: Tuple[int, int],
                 kernel: IntPair, stride: IntPair, padding: IntPair, dilation: IntPair,
                 deform_groups: int) -> Tuple[Tensor, bool]:
    """Bilinear samples of every tap for output rows ``rows[0]:rows[1]``, times the mask.

    Returns ``(cols, taps_first)``: cols of shape ``(N, K, C, L)`` if ``taps_first`` else
    ``(N, C, K, L)``, with ``K = kh * kw`` taps and ``L = rows * out_w`` positions.

    ``grid_sample``'s CPU kernels work in parallel over the batch only. With one image and one
    deformable group the taps therefore go in the batch dimension (the input is an ``expand``
    view, not a copy), which keeps every core busy; otherwise the batch is ``N * deform_groups``.
    """
    n, c, h, w = x.shape
    kh, kw = kernel
    taps = kh * kw
    r0, r1 = rows
    r, out_w = r1 - r0, offset.shape[-1]
    off = offset[:, :, r0:r1].reshape(n, deform_groups, taps, 2, r, out_w)
    # Sampling positions in input pixels, before the learnt offsets.
    ky = torch.arange(kh, dtype=x.dtype, device=x.device) * dilation[0]
    kx = torch.arange(kw, dtype=x.dtype, device=x.device) * dilation[1]
    oy = torch.arange(r0, r1, dtype=x.dtype, device=x.device) * stride[0] - padding[0]
    ox = torch.arange(out_w, dtype=x.dtype, device=x.device) * stride[1] - padding[1]
    base_y = ky.repeat_interleave(kw).reshape(taps, 1, 1) + oy[:, None]
    base_x = kx.repeat(kh).reshape(taps, 1, 1) + ox[None, :]
    py = base_y + off[:, :, :, 0]
    px = base_x + off[:, :, :, 1]
    # Normalise for align_corners=False: pixel p -> (2p + 1) / size - 1. Unlike the
    # align_corners=True form this stays defined for 1-pixel maps (no division by size - 1).
    grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1)
    # Without autograd the mask can scale the samples in place (no second large tensor); with
    # it, mul's backward needs the unscaled samples.
    in_place = not (torch.is_grad_enabled() and (x.requires_grad or offset.requires_grad
                                                 or mask.requires_grad))
    taps_first = n * deform_groups == 1
    if taps_first:  # batch = taps: (K, C, r, out_w)
        sampled = F.grid_sample(x.expand(taps, c, h, w), grid.reshape(taps, r, out_w, 2),
                                mode='bilinear', padding_mode='zeros', align_corners=False)
        msk = mask[:, :, r0:r1].reshape(taps, 1, r, out_w)
        sampled = sampled.mul_(msk) if in_place else sampled * msk
        return sampled.reshape(1, taps, c, r * out_w), True
    xg = x.reshape(n * deform_groups, c // deform_groups, h, w)
    sampled = F.grid_sample(xg, grid.reshape(n * deform_groups, taps * r, out_w, 2),
                            mode='bilinear', padding_mode='zeros', align_corners=False)
    msk = mask[:, :, r0:r1].reshape(n * deform_groups, 1, taps * r, out_w)
    sampled = sampled.mul_(msk) if in_place else sampled * msk
    return sampled.reshape(n, c, taps, r * out_w), False


def _conv_rows(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor, rows: Tuple[int, int],
               stride: IntPair, padding: IntPair, dilation: IntPair, groups: int,
               deform_groups: int) -> Tensor:
    """Output rows ``rows[0]:rows[1]`` without bias: ``(N, C_out, rows, out_w)``."""
    n, c = x.shape[:2]
    c_out, c_group, kh, kw = weight.shape
    taps = kh * kw
    cols, taps_first = _sample_taps(x, offset, mask, rows, (kh, kw), stride, padding, dilation,
                                    deform_groups)
    length = cols.shape[-1]
    w = weight.reshape(groups, c_out // groups, c_group, taps)
    if taps_first:  # match the weight to (K, C) order instead of moving the samples
        w = w.transpose(2, 3)
        cols = cols.reshape(n, taps, groups, c_group, length)
        cols = cols.transpose(1, 2) if groups > 1 else cols.reshape(n, 1, taps, c_group, length)
    cols = cols.reshape(n, groups, c_group * taps, length)
    out = torch.matmul(w.reshape(groups, c_out // groups, c_group * taps), cols)
    return out.reshape(n, c_out, -1, offset.shape[-1])


def modulated_deform_conv2d_torch(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor,
                                  bias: Optional[Tensor] = None, stride=1, padding=0,
                                  dilation=1, groups: int = 1, deform_groups: int = 1,
                                  max_elements: int = DEFAULT_MAX_ELEMENTS) -> Tensor:
    """Modulated deformable conv 2d, pure PyTorch, mmcv-compatible arguments and layout.

    Args:
        x: input ``(N, C_in, H, W)``.
        offset: ``(N, 2 * deform_groups * kh * kw, H_out, W_out)``, (dy, dx) per tap.
        mask: ``(N, deform_groups * kh * kw, H_out, W_out)``, already through a sigmoid.
        weight: ``(C_out, C_in / groups, kh, kw)``.
        bias: ``(C_out,)`` or None.
        max_elements: bound on the sampled-taps tensor held at once; output rows are
            chunked (and recomputed in backward) to stay under it.
    """
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, w = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    if c != c_per_group * groups:
        raise ValueError(f'x has {c} channels but weight expects in_channels = '
                         f'{c_per_group} * groups({groups}) = {c_per_group * groups}')
    if c % deform_groups:
        raise ValueError(f'in_channels ({c}) must be divisible by deform_groups ({deform_groups})')
    out_h = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    taps = kh * kw
    expected_offset = (n, 2 * deform_groups * taps, out_h, out_w)
    if tuple(offset.shape) != expected_offset:
        raise ValueError(f'offset must have shape {expected_offset}, got {tuple(offset.shape)}')
    if tuple(mask.shape) != (n, deform_groups * taps, out_h, out_w):
        raise ValueError(f'mask must have shape {(n, deform_groups * taps, out_h, out_w)}, '
                         f'got {tuple(mask.shape)}')

    per_row = n * c * taps * out_w
    rows_per_chunk = max(1, min(out_h, max_elements // max(per_row, 1)))
    args = (stride, padding, dilation, groups, deform_groups)
    if rows_per_chunk >= out_h:
        out = _conv_rows(x, offset, mask, weight, (0, out_h), *args)
    else:
        needs_grad = torch.is_grad_enabled() and any(
            t.requires_grad for t in (x, offset, mask, weight))
        chunks = []
        for r0 in range(0, out_h, rows_per_chunk):
            rows = (r0, min(out_h, r0 + rows_per_chunk))
            if needs_grad:
                chunks.append(checkpoint(_conv_rows, x, offset, mask, weight, rows, *args,
                                         use_reentrant=False))
            else:
                chunks.append(_conv_rows(x, offset, mask, weight, rows, *args))
        out = torch.cat(chunks, dim=2)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out
