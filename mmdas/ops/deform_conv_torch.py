"""Modulated deformable convolution (DCNv2) in plain PyTorch.

Zhu et al., "Deformable ConvNets v2: More Deformable, Better Results", CVPR 2019.

Same semantics and tensor layout as mmcv's ``modulated_deform_conv2d``: offsets are
``(dy, dx)`` pairs interleaved per kernel tap (taps in row-major order, one block of
``2 * kh * kw`` channels per deformable group), the mask has ``kh * kw`` channels per group,
and a sample falling outside the map reads zeros (bilinear with zero padding).

Bilinear sampling with a mask is a sparse matrix with four entries per sampled point (the
corner pixels, weighted by bilinear weight x mask), so the layer is

    cols = S @ X        (sparse CSR x dense: every tap of every output position, mask included)
    out  = W @ cols^T   (one dense matrix multiply, as im2col + GEMM)

with ``X`` the input in channels-last rows. The backward is three more products: ``S^T @
grad_cols`` for the input, ``grad_cols`` sampled at ``S``'s pattern against ``X``
(``torch.sparse.sampled_addmm``) for the corner weights, from which autograd reaches the
offsets and the mask, and the dense ``grad_out @ cols`` for the weight. The mask is folded
into the corner weights, so it costs no pass over the sampled values.

The sampled-taps tensor ``cols`` has ``batch * in_channels * kh * kw * out_h * out_w``
elements. It is never kept: output positions are processed in chunks of at most
``max_elements`` sampled values through one reused buffer, and backward samples each chunk
again (one more sparse product, cheaper than writing and keeping the whole tensor). What
autograd keeps is the padded input and four corner indices and weights per sampled point.
"""
import math
import warnings
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

IntPair = Tuple[int, int]

#: Default bound on the sampled-taps chunk (elements); 2**20 float32 values = 4 MiB.
DEFAULT_MAX_ELEMENTS = 2**20

# The CSR matrices below are internal temporaries; torch's "beta" notice is not for users.
warnings.filterwarnings('ignore', message='Sparse CSR tensor support is in beta state')


def _pair(value) -> IntPair:
    return (value, value) if isinstance(value, int) else tuple(value)


def _bilinear_corners(offset: Tensor, mask: Tensor, in_hw: IntPair, kernel: IntPair,
                      stride: IntPair, padding: IntPair, dilation: IntPair, deform_groups: int,
                      blocks: int) -> Tuple[Tensor, Tensor]:
    """Corner pixels and weights of every sampled point.

    Rows are ordered ``(n, out_y, out_x, block, tap)``: the input's channels are split into
    ``blocks`` equal blocks, each inside one deformable group. Returns ``(index, weight)``,
    both ``(rows, 4)``: the row of each corner in the channels-last table of the input
    zero-padded by one pixel, ``(n, block, h + 2, w + 2)``, and its weight (bilinear weight x
    mask). The padding holds the corners just outside the map; a point with no corner in the
    map gets weight 0. ``weight`` carries autograd to ``offset`` and ``mask``.
    """
    h, w = in_hw
    kh, kw = kernel
    n, _, out_h, out_w = offset.shape
    taps = kh * kw
    # (n, out_y, out_x, group, tap, yx)
    off = offset.view(n, deform_groups, taps, 2, out_h, out_w).permute(0, 4, 5, 1, 2, 3)
    msk = mask.view(n, deform_groups, taps, out_h, out_w).permute(0, 3, 4, 1, 2)
    if blocks != deform_groups:  # several blocks per deformable group share its offsets
        group_of_block = torch.arange(blocks, device=offset.device) * deform_groups // blocks
        off, msk = off[:, :, :, group_of_block], msk[:, :, :, group_of_block]
    kwargs = dict(dtype=offset.dtype, device=offset.device)
    tap_y = (torch.arange(kh, **kwargs) * dilation[0]).repeat_interleave(kw)
    tap_x = (torch.arange(kw, **kwargs) * dilation[1]).repeat(kh)
    # Positions in the padded map (+1); contiguous, so that the elementwise ops below run fast.
    out_y = torch.arange(out_h, **kwargs) * stride[0] + (1 - padding[0])
    out_x = torch.arange(out_w, **kwargs) * stride[1] + (1 - padding[1])
    py = (off[..., 0] + (out_y.view(out_h, 1, 1, 1) + tap_y)).contiguous()
    px = (off[..., 1] + (out_x.view(1, out_w, 1, 1) + tap_x)).contiguous()

    y0, x0 = torch.floor(py.detach()), torch.floor(px.detach())
    ly, lx = py - y0, px - x0
    # Top-left corners in [0, h] x [0, w] of the padded map keep a corner in the map; the
    # others (and NaN positions) are clamped to a valid row and get weight 0.
    row_y, row_x = y0.clamp(0, h), x0.clamp(0, w)
    near = (row_y == y0) & (row_x == x0)
    near_mask = msk * near
    top, bottom = (1 - ly) * near_mask, ly * near_mask
    left = 1 - lx
    weight = torch.stack((top * left, top * lx, bottom * left, bottom * lx), -1)
    # int32 indices: MKL's sparse routines take them without a conversion.
    padded_w = w + 2
    first = torch.arange(n * blocks, dtype=torch.int32, device=offset.device)
    first = first.view(n, 1, 1, blocks, 1) * ((h + 2) * padded_w)
    row = row_y.nan_to_num_(0).int() * padded_w + row_x.nan_to_num_(0).int() + first
    index = torch.stack((row, row + 1, row + padded_w, row + padded_w + 1), -1)
    return index.view(-1, 4), weight.view(-1, 4)


def _sampling_matrix(index: Tensor, weight: Tensor, table_rows: int) -> Tensor:
    """CSR matrix ``(rows, table_rows)`` with each row's four corner weights."""
    rows = index.shape[0]
    crow = torch.arange(0, 4 * rows + 1, 4, dtype=index.dtype, device=index.device)
    return torch.sparse_csr_tensor(crow, index.view(-1), weight.reshape(-1),
                                   (rows, table_rows), check_invariants=False)


def _transposed_sampling_matrix(index: Tensor, weight: Tensor, table_rows: int) -> Tensor:
    """CSR matrix ``(table_rows, rows)``, the transpose of :func:`_sampling_matrix`."""
    flat = index.view(-1)
    order = torch.argsort(flat, stable=True)
    crow = torch.zeros(table_rows + 1, dtype=flat.dtype, device=flat.device)
    torch.cumsum(torch.bincount(flat, minlength=table_rows), 0, dtype=flat.dtype, out=crow[1:])
    return torch.sparse_csr_tensor(crow, (order // 4).to(flat.dtype), weight.reshape(-1)[order],
                                   (table_rows, index.shape[0]), check_invariants=False)


def _even(total: int, most: int) -> int:
    """Size of each of the fewest parts of ``total`` of at most ``most``, made as even as can be."""
    return -(-total // -(-total // most))


def _chunks(batch: int, positions: int, chunk: int) -> List[Tuple[int, int]]:
    """Flat output-position ranges of at most ``chunk`` positions: whole images, or parts
    of one image when an image alone has more than ``chunk`` positions."""
    if chunk >= positions:
        step = _even(batch, chunk // positions) * positions
        return [(p0, min(batch * positions, p0 + step))
                for p0 in range(0, batch * positions, step)]
    step = _even(positions, chunk)
    return [(image * positions + first, image * positions + min(positions, first + step))
            for image in range(batch) for first in range(0, positions, step)]


def _image_segments(p0: int, p1: int, positions: int) -> List[Tuple[int, int, int, int]]:
    """``(image, first, last, row in chunk)`` for flat output positions ``p0:p1``."""
    segments = []
    for image in range(p0 // positions, (p1 - 1) // positions + 1):
        first = max(p0, image * positions) - image * positions
        last = min(p1, (image + 1) * positions) - image * positions
        segments.append((image, first, last, image * positions + first - p0))
    return segments


def _swap_inner(cols: Tensor, a: int, b: int) -> Tensor:
    """Rows ``(..., a, b)`` of ``cols`` reordered to ``(..., b, a)`` (a copy)."""
    return cols.view(cols.shape[0], -1, a, b).transpose(2, 3).reshape(cols.shape[0], -1)


class SampledConvFunction(torch.autograd.Function):
    """``out[n, :, l] = W_g @ cols[l]`` with ``cols = S @ table``, chunked over positions.

    ``table``: ``(n * blocks * (h + 2) * (w + 2), block)``, the zero-padded input;
    ``corner_index`` / ``corner_weight``:
    ``(rows, 4)``, rows ordered ``(position, block, tap)``; ``weight``: ``(groups, c_out /
    groups, k)``. The sampled rows give ``cols`` in ``(block, tap, channel)`` order; with
    ``channel_major`` they are reordered to the weight's own ``(block, channel, tap)`` order
    before the product (cheaper than reordering the weight when it is the larger of the two).
    Output ``(n, c_out, positions)``.

    The dense product runs per image (``W @ cols^T`` straight into the output) when an image
    has at least as many positions as the weight has rows; otherwise once per chunk of whole
    images (``cols @ W^T``, then transposed into the output), so that a large weight with few
    positions per image (late stages) is read once per chunk, not once per image.
    """

    @staticmethod
    def forward(ctx, table: Tensor, corner_weight: Tensor, corner_index: Tensor,
                weight: Tensor, batch: int, positions: int, chunk: int, taps: int,
                channel_major: bool) -> Tensor:
        groups, c_group_out, _ = weight.shape
        out = table.new_empty(batch, groups * c_group_out, positions)
        ctx.chunks = _chunks(batch, positions, chunk)
        ctx.positions, ctx.taps, ctx.channel_major = positions, taps, channel_major
        ctx.per_image = positions >= c_group_out
        ctx.rows_per_position = corner_index.shape[0] // (batch * positions)
        buffer = SampledConvFunction._buffer(ctx, table)
        for p0, p1 in ctx.chunks:
            cols, _ = SampledConvFunction._cols(ctx, table, corner_weight, corner_index, p0, p1,
                                                buffer)
            segments = _image_segments(p0, p1, positions)
            for g, w, columns, out_rows in SampledConvFunction._groups(weight):
                c = cols[:, columns]
                if ctx.per_image:
                    for image, first, last, row in segments:
                        torch.mm(w, c[row:row + last - first].t(),
                                 out=out[image, out_rows, first:last])
                    continue
                product = c @ w.t()
                for image, first, last, row in segments:
                    out[image, out_rows, first:last] = product[row:row + last - first].t()
        ctx.save_for_backward(table, corner_weight, corner_index, weight)
        return out

    @staticmethod
    def _groups(weight: Tensor):
        """``(group, its weight, its columns of cols, its output rows)`` per conv group."""
        groups, c_group_out, k = weight.shape
        for g in range(groups):
            yield (g, weight[g], slice(g * k, (g + 1) * k),
                   slice(g * c_group_out, (g + 1) * c_group_out))

    @staticmethod
    def _buffer(ctx, table: Tensor) -> Tensor:
        """One chunk's sampled rows; reused by every chunk (fresh pages cost time)."""
        longest = max(p1 - p0 for p0, p1 in ctx.chunks)
        return table.new_empty(longest * ctx.rows_per_position, table.shape[1])

    @staticmethod
    def _cols(ctx, table: Tensor, corner_weight: Tensor, corner_index: Tensor, p0: int,
              p1: int, buffer: Tensor) -> Tuple[Tensor, Tensor]:
        """Sampled rows of positions ``p0:p1`` (in ``buffer``) and their sampling matrix."""
        r0, r1 = p0 * ctx.rows_per_position, p1 * ctx.rows_per_position
        sampling = _sampling_matrix(corner_index[r0:r1], corner_weight[r0:r1], table.shape[0])
        # In place with beta=0: ``sparse @ dense`` would zero-fill a buffer and copy it.
        cols = buffer[:r1 - r0].addmm_(sampling, table, beta=0)
        cols = cols.view(p1 - p0, -1)
        if ctx.channel_major:
            cols = _swap_inner(cols, ctx.taps, table.shape[1])
        return cols, sampling

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        table, corner_weight, corner_index, weight = ctx.saved_tensors
        need_table, need_corner, _, need_weight = ctx.needs_input_grad[:4]
        grad_out = grad_out.contiguous()
        grad_table = torch.zeros_like(table) if need_table else None
        grad_corner = torch.empty_like(corner_weight) if need_corner else None
        grad_weight = torch.zeros_like(weight) if need_weight else None
        cols_buffer = SampledConvFunction._buffer(ctx, table)
        need_grad_cols = need_table or need_corner
        grad_buffer = SampledConvFunction._buffer(ctx, table) if need_grad_cols else None
        for p0, p1 in ctx.chunks:
            r0, r1 = p0 * ctx.rows_per_position, p1 * ctx.rows_per_position
            cols, sampling = SampledConvFunction._cols(ctx, table, corner_weight, corner_index,
                                                       p0, p1, cols_buffer)
            grad_cols = grad_buffer[:r1 - r0].view(cols.shape) if need_grad_cols else None
            segments = _image_segments(p0, p1, ctx.positions)
            for g, w, columns, out_rows in SampledConvFunction._groups(weight):
                c = cols[:, columns]
                if ctx.per_image:  # (out rows, positions) blocks of grad_out as they are
                    pieces = [(grad_out[image, out_rows, first:last], row, row + last - first)
                              for image, first, last, row in segments]
                else:  # one (positions, out rows) block for the chunk
                    go_t = grad_out.new_empty(p1 - p0, w.shape[0])
                    for image, first, last, row in segments:
                        go_t[row:row + last - first] = grad_out[image, out_rows, first:last].t()
                    pieces = [(go_t.t(), 0, p1 - p0)]
                for go, first_row, last_row in pieces:
                    if need_weight:
                        grad_weight[g].addmm_(go, c[first_row:last_row])
                    if grad_cols is not None:
                        torch.mm(go.t(), w, out=grad_cols[first_row:last_row, columns])
            if grad_cols is None:
                continue
            if ctx.channel_major:
                grad_cols = _swap_inner(grad_cols, table.shape[1], ctx.taps)
            grad_rows = grad_cols.view(r1 - r0, -1)
            if need_table:
                grad_table.addmm_(_transposed_sampling_matrix(
                    corner_index[r0:r1], corner_weight[r0:r1], table.shape[0]), grad_rows)
            if need_corner:  # the forward's sampling matrix as the pattern (beta=0: values unused)
                grad_corner[r0:r1] = torch.sparse.sampled_addmm(
                    sampling, grad_rows, table.t(), beta=0).values().view(-1, 4)
        return grad_table, grad_corner, None, grad_weight, None, None, None, None, None


def modulated_deform_conv2d_torch(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor,
                                  bias: Optional[Tensor] = None, stride=1, padding=0,
                                  dilation=1, groups: int = 1, deform_groups: int = 1,
                                  max_elements: int = DEFAULT_MAX_ELEMENTS) -> Tensor:
    """Modulated deformable conv 2d, pure PyTorch, mmcv-compatible arguments and layout.

    Args:
        x: input ``(N, C_in, H, W)``, float32 or float64.
        offset: ``(N, 2 * deform_groups * kh * kw, H_out, W_out)``, (dy, dx) per tap.
        mask: ``(N, deform_groups * kh * kw, H_out, W_out)``, already through a sigmoid.
        weight: ``(C_out, C_in / groups, kh, kw)``.
        bias: ``(C_out,)`` or None.
        max_elements: bound on the sampled-taps chunk held at once (see the module notes).
    """
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, w = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    if c != c_per_group * groups:
        raise ValueError(f'x has {c} channels but weight expects in_channels = '
                         f'{c_per_group} * groups({groups}) = {c_per_group * groups}')
    if c % deform_groups:
        raise ValueError(f'in_channels ({c}) must be divisible by deform_groups ({deform_groups})')
    if c_out % groups:
        raise ValueError(f'out_channels ({c_out}) must be divisible by groups ({groups})')
    out_h = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    taps = kh * kw
    expected_offset = (n, 2 * deform_groups * taps, out_h, out_w)
    if tuple(offset.shape) != expected_offset:
        raise ValueError(f'offset must have shape {expected_offset}, got {tuple(offset.shape)}')
    if tuple(mask.shape) != (n, deform_groups * taps, out_h, out_w):
        raise ValueError(f'mask must have shape {(n, deform_groups * taps, out_h, out_w)}, '
                         f'got {tuple(mask.shape)}')
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f'x must be float32 or float64 for the pure-PyTorch deformable conv, '
                        f"got {x.dtype}; for half precision on CUDA use deform_impl='mmcv'")
    if max_elements < 1:
        raise ValueError(f'max_elements must be a positive number of elements, got {max_elements}')

    # Channel blocks that lie in one deformable group and one conv group each.
    block = math.gcd(c // deform_groups, c // groups)
    blocks = c // block
    index, corner_weight = _bilinear_corners(offset, mask, (h, w), (kh, kw), stride, padding,
                                             dilation, deform_groups, blocks)
    # Channels-last rows of the zero-padded input, row-major (a plain reshape can stay a
    # column-major view of x, which MKL's sparse product would copy again on every call).
    table = F.pad(x, (1, 1, 1, 1)).view(n, blocks, block, h + 2, w + 2)
    table = table.permute(0, 1, 3, 4, 2).contiguous().view(-1, block)
    # The product needs the weight and the sampled taps in one column order: reorder the
    # smaller of the two (the weight, unless there are fewer positions than out channels).
    chunk = max(1, max_elements // (c * taps))
    channel_major = c_out // groups > n * out_h * out_w
    weight_cols = weight.reshape(groups, c_out // groups, -1)
    if not channel_major:  # (block, channel, tap) -> (block, tap, channel)
        weight_cols = weight_cols.reshape(groups, -1, block, taps).transpose(2, 3)
        weight_cols = weight_cols.reshape(groups, c_out // groups, -1)
    # int(): under jit tracing (mmengine's FLOP counter) sizes are traced 0-dim tensors.
    out = SampledConvFunction.apply(table, corner_weight.to(x.dtype), index,
                                    weight_cols.to(x.dtype), int(n), int(out_h * out_w),
                                    int(chunk), int(taps), bool(channel_major))
    out = out.view(n, c_out, out_h, out_w)
    if bias is not None:  # in place: the function's backward does not need its output
        out.add_(bias.view(1, -1, 1, 1))
    return out
