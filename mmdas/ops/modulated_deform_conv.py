"""One entry point for the modulated deformable conv: mmcv's kernel or the pure-PyTorch path.

``impl`` is one of:

* ``'mmcv'``: mmcv's compiled ``modulated_deform_conv2d`` (CPU and CUDA kernels);
* ``'torch'``: :func:`modulated_deform_conv2d_torch`, plain PyTorch ops;
* ``'auto'`` (default): the fastest correct path for the tensor's device. On CUDA that is
  mmcv's kernel when mmcv was built with its ops; on CPU it is the pure-PyTorch path, which
  measured several times faster than mmcv's CPU kernel (``tools/analysis/benchmark.py``).

Under ``torch.onnx.export`` every implementation exports as one standard ONNX ``DeformConv``
node (:mod:`mmdas.ops.onnx_export`).
"""
import functools
from typing import Optional, Tuple, Union

import torch
from mmcv.ops import ModulatedDeformConv2dPack as MMCVModulatedDeformConv2dPack
from torch import Tensor

from .deform_conv_torch import modulated_deform_conv2d_torch
from .onnx_export import deform_conv2d_onnx

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


def modulated_deform_conv2d(x: Tensor,
                            offset: Tensor,
                            mask: Tensor,
                            weight: Tensor,
                            bias: Optional[Tensor] = None,
                            stride=1,
                            padding=0,
                            dilation=1,
                            groups: int = 1,
                            deform_groups: int = 1,
                            impl: str = 'auto') -> Tensor:
    """Modulated deformable conv 2d (DCNv2) with mmcv's argument order and tensor layout."""
    if torch.onnx.is_in_onnx_export():
        return deform_conv2d_onnx(x, offset, mask, weight, bias, stride, padding, dilation, groups,
                                  deform_groups)
    if resolve_impl(impl, x.device) == 'mmcv':
        # mmcv's kernels read their inputs as contiguous NCHW: a channels-last tensor would
        # give a wrong result without an error.
        from mmcv.ops import modulated_deform_conv2d as mmcv_modulated_deform_conv2d
        return mmcv_modulated_deform_conv2d(x.contiguous(), offset.contiguous(), mask.contiguous(),
                                            weight.contiguous(), bias, stride, padding, dilation,
                                            groups, deform_groups)
    return modulated_deform_conv2d_torch(x, offset, mask, weight, bias, stride, padding, dilation,
                                         groups, deform_groups)


class ModulatedDeformConv2dPack(MMCVModulatedDeformConv2dPack):
    """mmcv's ``ModulatedDeformConv2dPack`` (DCNv2 that predicts its own offsets and mask) with
    the implementation chosen by ``impl``.

    An instance of mmcv's class, with its parameters, state-dict keys (``weight``, ``bias``,
    ``conv_offset.*``), offset split (``o1, o2, mask_logits``) and init (offsets and mask logits
    at zero), so that what looks for mmcv's DCN layers finds it: mmengine's optimizer
    constructor (``paramwise_cfg.dcn_offset_lr_mult`` and its DCN bias/decay rules), mmdeploy's
    rewriters. Its weight is kept channels-last, the layout the pure-PyTorch path's conv reads
    (mmcv's kernel is handed a contiguous copy).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Union[int, Tuple[int, int]] = 3,
                 stride=1,
                 padding=1,
                 dilation=1,
                 groups: int = 1,
                 deform_groups: int = 1,
                 bias: bool = True,
                 impl: str = 'auto') -> None:
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'in_channels ({in_channels}) and out_channels ({out_channels}) '
                             f'must be divisible by groups ({groups})')
        if in_channels % deform_groups:
            raise ValueError(f'in_channels ({in_channels}) must be divisible by deform_groups '
                             f'({deform_groups})')
        self.impl = check_impl(impl)
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            deform_groups=deform_groups,
            bias=bias)
        self.weight.data = self.weight.data.contiguous(memory_format=torch.channels_last)

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
