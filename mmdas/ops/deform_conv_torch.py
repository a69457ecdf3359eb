"""Modulated deformable convolution (DCNv2) in plain PyTorch.

Zhu et al., "Deformable ConvNets v2: More Deformable, Better Results", CVPR 2019.

Same semantics and tensor layout as mmcv's ``modulated_deform_conv2d`` (and torchvision's
``deform_conv2d`` with a mask): offsets are ``(dy, dx)`` pairs interleaved per kernel tap (taps
in row-major order, one block of ``2 * kh * kw`` channels per deformable group), the mask has
``kh * kw`` channels per group, and a sample falling outside the map reads zeros.

How one call works
------------------
1. **Plan** (:func:`bilinear_corners`, :func:`plan_chunks`). A *sampled point* is one output
   position, one kernel tap and one deformable group. It reads four corner pixels of the input,
   each weighted by its bilinear weight times the point's mask value. The plan holds, per point,
   the four corners' rows in the *table* (the input zero-padded by one pixel, channels last: one
   row per pixel and deformable group) and their four weights. Points are ordered
   ``(image, out_y, tap_y, out_x, tap_x, group)``, so the sampled values of consecutive output
   rows form a channels-last *taps image* of ``kh * rows`` x ``kw * out_w`` pixels in which each
   ``kh x kw`` patch holds one output position's taps.
2. **Sampling** (sparse x dense): ``taps = S @ table``, ``S`` the CSR matrix of the plan (four
   entries per point).
3. **Product** (dense conv): ``out = conv2d(taps, weight, stride=(kh, kw), groups=groups)``: the
   conv with stride equal to its kernel multiplies each patch with the weight, as im2col + GEMM
   would, through the same convolution kernels as a dense conv.

The backward is the conv's own backward (gradients of the taps and of the weight), then
``S^T @ grad_taps`` for the table (hence the input) and ``grad_taps`` sampled at ``S``'s
pattern against the table (``torch.sparse.sampled_addmm``) for the corner weights, from which
autograd reaches the offsets and the mask. The mask is folded into the corner weights, so it
costs no pass over the sampled values.

Convention at the border: mmcv's
-------------------------------
mmcv's kernels (CPU and CUDA share ``dmcn_im2col_bilinear`` and ``dmcn_get_coordinate_weight``)
sample a point only when both its coordinates lie strictly inside ``(-1, size)``; elsewhere the
point's value and every gradient through it are zero. torchvision's ``deform_conv2d`` reads the
same values but differentiates a point that sits exactly at ``-1`` (offset gradient
``v(0) - v(-1)``). The two differ only in that offset gradient, and exactly where a freshly
initialised DAS gate samples: zero offsets and padding 1 put every border tap at ``-1``. We
follow mmcv, the kernel a GPU user trains with, so that a model takes the same steps on CPU.

Memory: the taps image has ``N * C_in * kh * kw * H_out * W_out`` values and is never kept. It is
built in chunks of at most ``max_elements`` values (whole images, or runs of output rows of one
image) through one reused buffer, and sampled again in backward; autograd keeps the padded input
and four int32 rows and four weights per sampled point.
"""
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.utils import _pair

IntPair = Tuple[int, int]

#: Default bound on the values of one chunk of the taps image; 2**22 float32 values = 16 MiB.
DEFAULT_MAX_ELEMENTS = 2**22


@contextmanager
def _sparse_beta_notice_silenced() -> Iterator[None]:
    """Our CSR matrices are internal temporaries; torch's "beta" notice is not for our users."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Sparse CSR tensor support is in beta state')
        yield


@dataclass(frozen=True)
class ConvGeometry:
    """The sizes of one deformable conv call."""
    batch: int
    in_channels: int
    in_hw: IntPair
    out_channels: int
    kernel: IntPair
    stride: IntPair
    padding: IntPair
    dilation: IntPair
    groups: int
    deform_groups: int

    @property
    def out_hw(self) -> IntPair:
        return tuple(
            (size + 2 * pad - dil * (k - 1) - 1) // step + 1 for size, pad, dil, k, step in zip(
                self.in_hw, self.padding, self.dilation, self.kernel, self.stride))

    @property
    def taps(self) -> int:
        return self.kernel[0] * self.kernel[1]

    @property
    def group_channels(self) -> int:
        """Input channels per deformable group: the columns of the table."""
        return self.in_channels // self.deform_groups

    @property
    def padded_hw(self) -> IntPair:
        return self.in_hw[0] + 2, self.in_hw[1] + 2

    @property
    def table_rows(self) -> int:
        return self.batch * self.deform_groups * self.padded_hw[0] * self.padded_hw[1]

    @property
    def points_per_out_row(self) -> int:
        """Sampled points of one output row of one image."""
        return self.taps * self.out_hw[1] * self.deform_groups


@dataclass(frozen=True)
class Chunk:
    """Output rows ``first_row:stop_row`` of images ``first_image:stop_image``: whole images,
    or a run of rows of one image. Its sampled points are one contiguous range."""
    first_image: int
    stop_image: int
    first_row: int
    stop_row: int

    def points(self, geometry: ConvGeometry) -> slice:
        per_row, out_h = geometry.points_per_out_row, geometry.out_hw[0]
        first = (self.first_image * out_h + self.first_row) * per_row
        stop = ((self.stop_image - 1) * out_h + self.stop_row) * per_row
        return slice(first, stop)

    def out_index(self) -> Tuple[slice, slice, slice]:
        """Where the chunk's result goes in the ``(N, C_out, H_out, W_out)`` output."""
        return (slice(self.first_image,
                      self.stop_image), slice(None), slice(self.first_row, self.stop_row))


def _balanced_part_size(total: int, most: int) -> int:
    """Size of each part when ``total`` is cut into the fewest parts of at most ``most``,
    made as equal as can be (the last part may be smaller)."""
    parts = math.ceil(total / most)
    return math.ceil(total / parts)


def plan_chunks(geometry: ConvGeometry, max_elements: int) -> Tuple[Chunk, ...]:
    """Cut the output into chunks whose taps hold at most ``max_elements`` values: runs of whole
    images where one image fits, otherwise runs of output rows of each image (at least one)."""
    (out_h, _), batch = geometry.out_hw, geometry.batch
    row_values = geometry.points_per_out_row * geometry.group_channels
    if out_h * row_values <= max_elements:
        step = _balanced_part_size(batch, max_elements // (out_h * row_values))
        return tuple(
            Chunk(first, min(batch, first + step), 0, out_h) for first in range(0, batch, step))
    step = _balanced_part_size(out_h, max(1, max_elements // row_values))
    return tuple(
        Chunk(image, image + 1, first, min(out_h, first + step)) for image in range(batch)
        for first in range(0, out_h, step))


def bilinear_corners(offset: Tensor, mask: Tensor, geometry: ConvGeometry) -> Tuple[Tensor, Tensor]:
    """The four corners of every sampled point: their table rows and their weights.

    Returns ``(corner_rows, corner_weights)``, both ``(points, 4)`` with points ordered
    ``(image, out_y, tap_y, out_x, tap_x, group)`` and corners ``(top-left, top-right,
    bottom-left, bottom-right)``. ``corner_rows`` (int32) index the table of the input
    zero-padded by one pixel; the padding holds the corners just outside the map, and a point
    with no corner inside the map gets weight 0 (its rows are clamped to valid ones).
    ``corner_weights`` (bilinear weight x mask) carry autograd to ``offset`` and ``mask``.
    """
    g = geometry
    (h, w), (pad_h, pad_w) = g.in_hw, g.padded_hw
    (kh, kw), (out_h, out_w) = g.kernel, g.out_hw
    n, groups = g.batch, g.deform_groups
    # Coordinate-major, so that every elementwise op below runs over long contiguous rows:
    # offset (n, group, tap_y, tap_x, yx, out_y, out_x) -> (yx, points), mask -> (points,)
    off = offset.view(n, groups, kh, kw, 2, out_h, out_w).permute(4, 0, 5, 2, 6, 3, 1)
    msk = mask.view(n, groups, kh, kw, out_h, out_w).permute(0, 4, 2, 5, 3, 1).reshape(-1)
    like = dict(dtype=offset.dtype, device=offset.device)
    # Where each tap of each output position reads without offsets, in the padded map.
    base_y = torch.arange(out_h, **like).view(-1, 1) * g.stride[0] \
        + torch.arange(kh, **like) * g.dilation[0] + (1 - g.padding[0])
    base_x = torch.arange(out_w, **like).view(-1, 1) * g.stride[1] \
        + torch.arange(kw, **like) * g.dilation[1] + (1 - g.padding[1])
    base = torch.stack(
        torch.broadcast_tensors(base_y.view(out_h, kh, 1, 1), base_x.view(1, 1, out_w, kw)))
    yx = (off + base.view(2, 1, out_h, kh, out_w, kw, 1)).reshape(2, -1)

    # mmcv's rule: a point samples (and passes a gradient to its offset) only if it lies
    # strictly inside (-1, size) on both axes, i.e. in (0, size + 1) of the padded map (see
    # the module notes). Its top-left corner is then in [0, h] x [0, w] of the padded map; the
    # others (and NaN positions) are clamped to a valid row and get weight 0.
    position = yx.detach()
    top_left = torch.floor(position)
    limits = position.new_tensor([[h + 1], [w + 1]])
    inside = ((position > 0) & (position < limits)).all(0)
    clamped = torch.minimum(top_left.clamp(min=0), limits - 1)
    frac = yx - top_left
    near = 1 - frac
    masked = msk * inside
    vertical = torch.stack((near[0] * masked, frac[0] * masked))  # top, bottom
    horizontal = torch.stack((near[1], frac[1]))  # left, right
    # (top, bottom) x (left, right): top-left, top-right, bottom-left, bottom-right
    weights = vertical.unsqueeze(1) * horizontal.unsqueeze(0)  # (2, 2, points)
    # int32 rows: MKL's sparse routines take them without a conversion.
    row_yx = clamped.nan_to_num_(0).int()
    image_group = torch.arange(n * groups, dtype=torch.int32, device=offset.device)
    first_row = (image_group * (pad_h * pad_w)).view(n, 1, 1, 1, 1, groups)
    rows = (row_yx[0] * pad_w + row_yx[1]).view(n, out_h, kh, out_w, kw, groups) + first_row
    corner_steps = torch.tensor([[0, 1], [pad_w, pad_w + 1]],
                                dtype=torch.int32,
                                device=offset.device)
    corners = rows.view(1, 1, -1) + corner_steps.unsqueeze(-1)  # (2, 2, points)
    # One transposing copy each into the (points, 4) layout of the sparse matrix (the (2, 2)
    # split lets the copy kernel run several times faster than a (4, points) transpose).
    return (corners.permute(2, 0,
                            1).contiguous().view(-1,
                                                 4), weights.permute(2, 0,
                                                                     1).contiguous().view(-1, 4))


def padded_table(x: Tensor, geometry: ConvGeometry) -> Tensor:
    """The input zero-padded by one pixel, one row per (image, group, y, x), channels of the
    group as columns; row-major (a column-major view would be copied by every sparse product)."""
    g = geometry
    (h, w), (pad_h, pad_w) = g.in_hw, g.padded_hw
    table = x.new_zeros(g.batch, g.deform_groups, pad_h, pad_w, g.group_channels)
    table[:, :, 1:h + 1, 1:w + 1] = x.view(g.batch, g.deform_groups, g.group_channels, h,
                                           w).permute(0, 1, 3, 4, 2)
    return table.view(-1, g.group_channels)


def _sampling_matrix(corner_rows: Tensor, corner_weights: Tensor, table_rows: int) -> Tensor:
    """CSR ``(points, table_rows)``: row ``p`` holds point ``p``'s four corner weights."""
    points = corner_rows.shape[0]
    crow = torch.arange(0, 4 * points + 1, 4, dtype=corner_rows.dtype, device=corner_rows.device)
    with _sparse_beta_notice_silenced():
        return torch.sparse_csr_tensor(
            crow,
            corner_rows.view(-1),
            corner_weights.reshape(-1), (points, table_rows),
            check_invariants=False)


def _transposed_sampling_matrix(corner_rows: Tensor, corner_weights: Tensor,
                                table_rows: int) -> Tensor:
    """CSR ``(table_rows, points)``, the transpose of :func:`_sampling_matrix`."""
    flat = corner_rows.view(-1)
    order = torch.argsort(flat, stable=True)
    crow = torch.zeros(table_rows + 1, dtype=flat.dtype, device=flat.device)
    torch.cumsum(torch.bincount(flat, minlength=table_rows), 0, dtype=flat.dtype, out=crow[1:])
    with _sparse_beta_notice_silenced():
        return torch.sparse_csr_tensor(
            crow, (order // 4).to(flat.dtype),
            corner_weights.reshape(-1)[order], (table_rows, corner_rows.shape[0]),
            check_invariants=False)


@dataclass(frozen=True)
class SampledConvPlan:
    """What :class:`SampledConvFunction` needs besides tensors: sizes, chunks and the memory
    format of the output (the input's, as for ``conv2d``)."""
    geometry: ConvGeometry
    chunks: Tuple[Chunk, ...]
    out_format: torch.memory_format = torch.contiguous_format

    def buffer_values(self) -> int:
        """Values of the largest chunk's taps image (the size of the reused buffer)."""
        return max(
            c.points(self.geometry).stop - c.points(self.geometry).start
            for c in self.chunks) * self.geometry.group_channels


class SampledConvFunction(torch.autograd.Function):
    """``out = conv2d(S @ table as a taps image, weight, stride=kernel)``, chunk by chunk.

    Inputs: ``table`` ``(table_rows, C_in / deform_groups)``, ``corner_rows`` and
    ``corner_weights`` ``(points, 4)`` (as :func:`bilinear_corners` returns them), ``weight``
    ``(C_out, C_in / groups, kh, kw)`` and the :class:`SampledConvPlan`. Output ``(N, C_out,
    H_out, W_out)`` in the plan's memory format. The weight's gradient of a chunk goes through
    the conv's own backward, or a matrix product where that is faster
    (:func:`_weight_grad_by_product`).

    The conv runs on a channels-last taps image, so it wants a channels-last weight: a weight
    in another layout is converted once per call (layers keep theirs channels-last). With a
    single chunk the taps image is kept for backward (at most ``max_elements`` values);
    otherwise backward samples each chunk again.
    """

    @staticmethod
    def forward(ctx, table: Tensor, corner_rows: Tensor, corner_weights: Tensor, weight: Tensor,
                plan: SampledConvPlan) -> Tensor:
        geometry = plan.geometry
        weight = weight.contiguous(memory_format=torch.channels_last)
        buffer = table.new_empty(plan.buffer_values())
        out = kept_taps = None
        for chunk in plan.chunks:
            taps, _ = _sample_taps(table, corner_rows, corner_weights, chunk, geometry, buffer)
            result = F.conv2d(taps, weight, None, geometry.kernel, 0, 1, geometry.groups)
            if len(plan.chunks) == 1:
                out, kept_taps = result.contiguous(memory_format=plan.out_format), taps
                break
            if out is None:
                out = torch.empty(
                    geometry.batch,
                    geometry.out_channels,
                    *geometry.out_hw,
                    dtype=result.dtype,
                    device=result.device,
                    memory_format=plan.out_format)
            out[chunk.out_index()] = result
        ctx.plan = plan
        ctx.save_for_backward(table, corner_rows, corner_weights, weight, kept_taps)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        table, corner_rows, corner_weights, weight, kept_taps = ctx.saved_tensors
        plan, geometry = ctx.plan, ctx.plan.geometry
        need_table, _, need_corners, need_weight, _ = ctx.needs_input_grad
        need_taps = need_table or need_corners
        grad_table = torch.zeros_like(table) if need_table else None
        grad_corners = torch.empty_like(corner_weights) if need_corners else None
        grad_weight = None
        buffer = table.new_empty(plan.buffer_values()) if kept_taps is None else None
        for chunk in plan.chunks:
            # The taps are only needed for the weight's gradient; the matrix always is.
            taps, sampling = _sample_taps(
                table,
                corner_rows,
                corner_weights,
                chunk,
                geometry,
                buffer,
                values=need_weight and kept_taps is None)
            if taps is None:  # no weight gradient: the conv's input gradient needs its shape only
                taps = kept_taps if kept_taps is not None else table.new_empty(1).expand(
                    _taps_shape(chunk, geometry))
            chunk_grad_out = grad_out[chunk.out_index()]
            by_product = need_weight and _weight_grad_by_product(chunk, geometry)
            grad_taps, chunk_grad_weight, _ = torch.ops.aten.convolution_backward(
                chunk_grad_out, taps, weight, None, list(geometry.kernel), [0, 0], [1, 1], False,
                [0, 0], geometry.groups, [need_taps, need_weight and not by_product, False])
            if by_product:
                chunk_grad_weight = _weight_grad_as_product(chunk_grad_out, taps, geometry)
            if need_weight:  # the first chunk's as it is: no zero-fill, no sum, for one chunk
                grad_weight = chunk_grad_weight if grad_weight is None else \
                    grad_weight.add_(chunk_grad_weight)
            if not need_taps:
                continue
            # (images, C_in, kh * rows, kw * out_w) channels-last -> one row per sampled point
            grad_values = grad_taps.permute(0, 2, 3, 1).reshape(-1, geometry.group_channels)
            points = chunk.points(geometry)
            if need_table:
                grad_table.addmm_(
                    _transposed_sampling_matrix(corner_rows[points], corner_weights[points],
                                                geometry.table_rows), grad_values)
            if need_corners:  # the forward's matrix as the pattern (beta=0: its values unused)
                grad_corners[points] = torch.sparse.sampled_addmm(
                    sampling, grad_values, table.t(), beta=0).values().view(-1, 4)
        return grad_table, None, grad_corners, grad_weight, None


def _weight_grad_by_product(chunk: Chunk, geometry: ConvGeometry) -> bool:
    """Whether the weight's gradient of ``chunk`` goes through a matrix product rather than the
    conv's own backward: when the weight holds more values than the chunk's taps image (few
    positions, many channels: late gates), where oneDNN's weight gradient is several times
    slower than the product (DAS-R50's last gate at 224 px: 32 ms against 7 ms)."""
    images = chunk.stop_image - chunk.first_image
    positions = images * (chunk.stop_row - chunk.first_row) * geometry.out_hw[1]
    return geometry.out_channels // geometry.groups > positions


def _weight_grad_as_product(grad_out: Tensor, taps: Tensor, geometry: ConvGeometry) -> Tensor:
    """``d weight = grad_out^T @ patches`` per conv group, ``patches`` the taps of each output
    position in the channels-last weight's order ``(tap_y, tap_x, channel)``."""
    (kh, kw), out_w = geometry.kernel, geometry.out_hw[1]
    images, c_in, height, _ = taps.shape
    rows, groups = height // kh, geometry.groups
    # (images, rows, kh, out_w, kw, C) -> (images, rows, out_w, kh, kw, groups, C / groups)
    patches = taps.permute(0, 2, 3, 1).reshape(images, rows, kh, out_w, kw, groups, -1)
    patches = patches.permute(0, 1, 3, 5, 2, 4, 6)
    grads = grad_out.permute(0, 2, 3, 1).reshape(images * rows * out_w, groups, -1)
    per_group = [
        grads[:, g].t() @ patches[:, :, :, g].reshape(images * rows * out_w, -1)
        for g in range(groups)
    ]  # each (C_out / groups, kh * kw * C_in / groups)
    weight = per_group[0] if groups == 1 else torch.cat(per_group)  # (no 30 MB copy for one)
    weight = weight.view(geometry.out_channels, kh, kw, c_in // groups)
    return weight.permute(0, 3, 1, 2)  # a channels-last (C_out, C_in / groups, kh, kw) tensor


def _taps_shape(chunk: Chunk, geometry: ConvGeometry) -> Tuple[int, int, int, int]:
    """``(images, C_in, kh * rows, kw * out_w)``: the shape of a chunk's taps image."""
    (kh, kw), out_w = geometry.kernel, geometry.out_hw[1]
    images = chunk.stop_image - chunk.first_image
    return images, geometry.in_channels, kh * (chunk.stop_row - chunk.first_row), kw * out_w


def _sample_taps(table: Tensor,
                 corner_rows: Tensor,
                 corner_weights: Tensor,
                 chunk: Chunk,
                 geometry: ConvGeometry,
                 buffer: Tensor,
                 values: bool = True) -> Tuple[Optional[Tensor], Tensor]:
    """The chunk's taps image ``(images, C_in, kh * rows, kw * out_w)`` (a channels-last view of
    ``buffer``; None unless ``values``) and its sampling matrix."""
    points = chunk.points(geometry)
    sampling = _sampling_matrix(corner_rows[points], corner_weights[points], geometry.table_rows)
    if not values:
        return None, sampling
    count = points.stop - points.start
    sampled = buffer[:count * geometry.group_channels].view(count, geometry.group_channels)
    # In place with beta=0: ``sparse @ dense`` would zero-fill a new tensor and copy it.
    sampled.addmm_(sampling, table, beta=0)
    images, channels, height, width = _taps_shape(chunk, geometry)
    return sampled.view(images, height, width, channels).permute(0, 3, 1, 2), sampling


def _memory_format(x: Tensor) -> torch.memory_format:
    """Channels-last for a channels-last (and not also contiguous) map, else contiguous."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


def _check_arguments(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor,
                     geometry: ConvGeometry, max_elements: int) -> None:
    g = geometry
    c_in, groups, deform_groups = g.in_channels, g.groups, g.deform_groups
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f'x must be float32 or float64 for the pure-PyTorch deformable conv, '
                        f'got {x.dtype}; mmdas.ops.modulated_deform_conv2d (what the layers '
                        'call) computes half-precision inputs and autocast in float32')
    if c_in != weight.shape[1] * groups:
        raise ValueError(f'x has {c_in} channels but weight expects in_channels = '
                         f'{weight.shape[1]} * groups({groups}) = {weight.shape[1] * groups}')
    if c_in % deform_groups:
        raise ValueError(f'in_channels ({c_in}) must be divisible by deform_groups '
                         f'({deform_groups})')
    if g.out_channels % groups:
        raise ValueError(f'out_channels ({g.out_channels}) must be divisible by groups ({groups})')
    if min(g.out_hw) < 1:
        raise ValueError(f'the output would be empty ({g.out_hw}) for an input of {g.in_hw}')
    expected_offset = (g.batch, 2 * deform_groups * g.taps, *g.out_hw)
    if tuple(offset.shape) != expected_offset:
        raise ValueError(f'offset must have shape {expected_offset}, got {tuple(offset.shape)}')
    expected_mask = (g.batch, deform_groups * g.taps, *g.out_hw)
    if tuple(mask.shape) != expected_mask:
        raise ValueError(f'mask must have shape {expected_mask}, got {tuple(mask.shape)}')
    if max_elements < 1:
        raise ValueError(f'max_elements must be a positive number of elements, got {max_elements}')


def modulated_deform_conv2d_torch(x: Tensor,
                                  offset: Tensor,
                                  mask: Tensor,
                                  weight: Tensor,
                                  bias: Optional[Tensor] = None,
                                  stride=1,
                                  padding=0,
                                  dilation=1,
                                  groups: int = 1,
                                  deform_groups: int = 1,
                                  max_elements: int = DEFAULT_MAX_ELEMENTS) -> Tensor:
    """Modulated deformable conv 2d, pure PyTorch, mmcv-compatible arguments and layout.

    Args:
        x: input ``(N, C_in, H, W)``, float32 or float64.
        offset: ``(N, 2 * deform_groups * kh * kw, H_out, W_out)``, (dy, dx) per tap.
        mask: ``(N, deform_groups * kh * kw, H_out, W_out)``, already through a sigmoid.
        weight: ``(C_out, C_in / groups, kh, kw)``.
        bias: ``(C_out,)`` or None.
        max_elements: bound on the values of the taps image held at once (see module notes).

    Returns ``(N, C_out, H_out, W_out)`` in ``x``'s memory format (as ``conv2d`` does).
    """
    # int(): under jit tracing (mmengine's FLOP counter) sizes are traced 0-dim tensors.
    n, c_in, h, w = (int(size) for size in x.shape)
    c_out, _, kh, kw = (int(size) for size in weight.shape)
    geometry = ConvGeometry(n, c_in, (h, w), c_out, (kh, kw), _pair(stride), _pair(padding),
                            _pair(dilation), groups, deform_groups)
    _check_arguments(x, offset, mask, weight, geometry, max_elements)
    corner_rows, corner_weights = bilinear_corners(offset, mask, geometry)
    plan = SampledConvPlan(geometry, plan_chunks(geometry, max_elements), _memory_format(x))
    out = SampledConvFunction.apply(
        padded_table(x, geometry), corner_rows, corner_weights.to(x.dtype), weight.to(x.dtype),
        plan)
    if bias is not None:  # in place: the function's backward does not need its output
        out.add_(bias.view(1, -1, 1, 1))
    return out


__all__: List[str] = [
    'ConvGeometry', 'Chunk', 'SampledConvFunction', 'SampledConvPlan', 'bilinear_corners',
    'modulated_deform_conv2d_torch', 'padded_table', 'plan_chunks', 'DEFAULT_MAX_ELEMENTS'
]
