"""One entry point for the modulated deformable conv: mmcv's kernel or the pure-PyTorch path.

``impl`` is one of:

* ``'mmcv'``: mmcv's compiled ``modulated_deform_conv2d`` (CPU and CUDA kernels);
* ``'torch'``: :func:`modulated_deform_conv2d_torch`, no compiled ops needed;
* ``'auto'`` (default): the fastest correct path for the tensor's device. On CUDA that is
  mmcv's kernel when mmcv was built with its ops; on CPU it is the pure-PyTorch path, which
  measured several times faster than mmcv's CPU kernel (``tools/analysis/benchmark.py``).
"""
import functools
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from .deform_conv_torch import modulated_deform_conv2d_torch

DEFORM_IMPLS = ('auto', 'mmcv', 'torch')


@functools.lru_cache(maxsize=None)
def _mmcv_ops_error() -> Optional[str]:
    """None when mmcv's compiled deformable conv loads, else why it does not."""
    try:
        from mmcv.ops import modulated_deform_conv2d  # noqa: F401
    except Exception as err:  # ImportError, or a missing/ABI-mismatched extension
        return f'{type(err).__name__}: {err}'
    return None


def mmcv_ops_available() -> bool:
    """Whether mmcv was built with its ops (``MMCV_WITH_OPS=1``) and they load."""
    return _mmcv_ops_error() is None


def check_impl(impl: str) -> str:
    """Validate a ``deform_impl`` argument; raise if it cannot run here."""
    if impl not in DEFORM_IMPLS:
        raise ValueError(f'deform_impl must be one of {DEFORM_IMPLS}, got {impl!r}')
    if impl == 'mmcv' and not mmcv_ops_available():
        raise RuntimeError(
            "deform_impl='mmcv' needs mmcv compiled with its ops (MMCV_WITH_OPS=1), but "
            f'`from mmcv.ops import modulated_deform_conv2d` failed ({_mmcv_ops_error()}). '
            "Rebuild mmcv with `make install`, or use deform_impl='torch' or 'auto'.")
    return impl


def resolve_impl(impl: str, device: torch.device) -> str:
    """The concrete implementation ``'mmcv'`` or ``'torch'`` that ``impl`` means on ``device``."""
    check_impl(impl)
    if impl != 'auto':
        return impl
    return 'mmcv' if device.type == 'cuda' and mmcv_ops_available() else 'torch'


def modulated_deform_conv2d(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor,
                            bias: Optional[Tensor] = None, stride=1, padding=0, dilation=1,
                            groups: int = 1, deform_groups: int = 1,
                            impl: str = 'auto') -> Tensor:
    """Modulated deformable conv 2d (DCNv2) with mmcv's argument order and tensor layout."""
    if resolve_impl(impl, x.device) == 'mmcv':
        from mmcv.ops import modulated_deform_conv2d as mmcv_modulated_deform_conv2d
        return mmcv_modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding,
                                            dilation, groups, deform_groups)
    return modulated_deform_conv2d_torch(x, offset, mask, weight, bias, stride, padding,
                                         dilation, groups, deform_groups)


class ModulatedDeformConv2dPack(nn.Module):
    """DCNv2 layer that predicts its own offsets and mask, like mmcv's ``ModulatedDeformConv2dPack``.

    Same parameters and state-dict keys as mmcv's module (``weight``, ``bias``,
    ``conv_offset.*``), the same offset split (``o1, o2, mask_logits``) and the same init
    (offsets and mask logits start at zero), with the implementation chosen by ``impl``.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: Union[int, Tuple[int, int]] = 3, stride=1, padding=1,
                 dilation=1, groups: int = 1, deform_groups: int = 1, bias: bool = True,
                 impl: str = 'auto') -> None:
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'in_channels ({in_channels}) and out_channels ({out_channels}) '
                             f'must be divisible by groups ({groups})')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = (kh, kw)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.deform_groups = groups, deform_groups
        self.impl = check_impl(impl)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.conv_offset = nn.Conv2d(in_channels, deform_groups * 3 * kh * kw, (kh, kw),
                                     stride=stride, padding=padding, dilation=dilation,
                                     bias=True)
        self.init_weights()

    def init_weights(self) -> None:
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        nn.init.uniform_(self.weight, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor) -> Tensor:
        o1, o2, mask_logits = torch.chunk(self.conv_offset(x), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        return modulated_deform_conv2d(x, offset, torch.sigmoid(mask_logits), self.weight,
                                       self.bias, self.stride, self.padding, self.dilation,
                                       self.groups, self.deform_groups, self.impl)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, padding={self.padding}, dilation={self.dilation}, '
                f'groups={self.groups}, deform_groups={self.deform_groups}, impl={self.impl!r}')
