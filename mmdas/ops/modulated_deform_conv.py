"""One entry point for the modulated deformable conv: mmcv's kernel or the pure-PyTorch path.

``impl`` is one of:

* ``'mmcv'``: mmcv's compiled ``modulated_deform_conv2d`` (CPU and CUDA kernels);
* ``'torch'``: :func:`modulated_deform_conv2d_torch`, plain PyTorch ops;
* ``'auto'`` (default): the fastest correct path for the tensor's device. On CUDA that is
  mmcv's kernel, which must have been compiled with CUDA (otherwise 'auto' raises rather than
  fail later inside the kernel); on CPU it is the pure-PyTorch path, which measured several
  times faster than mmcv's CPU kernel (``projects/das_bench/tools/benchmark.py``).

Precision: every implementation computes in float32 (float64 stays float64). Under
``torch.autocast`` the inputs are cast to float32 and autocast is switched off inside, as
``torch.amp.custom_fwd(cast_inputs=torch.float32)`` does; the result comes back in autocast's
dtype, as a convolution's would. A model converted to a half type gets its result back in the
input's dtype. (mmcv's own op, called directly, computes in the offset's dtype instead.)

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
#: Dtypes the implementations compute in as they are; any other is computed in float32.
FULL_PRECISION = (torch.float32, torch.float64)


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
    """Validate a ``deform_impl`` argument when a layer is built; raise if it cannot run here:
    on CPU, and on CUDA too when torch sees a GPU (the device a model is usually moved to)."""
    choose_impl(impl, 'cpu', mmcv_ops_available(), False)
    if torch.cuda.is_available():
        choose_impl(impl, 'cuda', mmcv_ops_available(), mmcv_cuda_available())
    return impl


@functools.lru_cache(maxsize=None)
def mmcv_cuda_available() -> bool:
    """Whether mmcv's ops were compiled with CUDA (``get_compiling_cuda_version()`` says which
    CUDA; an mmcv built where torch saw no GPU says ``'not available'``)."""
    if not mmcv_ops_available():
        return False
    from mmcv.ops import get_compiling_cuda_version
    return get_compiling_cuda_version() not in ('', 'not available')


MMCV_WITHOUT_CUDA = (
    "mmcv was compiled without its CUDA kernels (mmcv.ops.get_compiling_cuda_version() says "
    "'not available'), so deform_impl={impl!r} has no deformable-conv kernel on CUDA. Rebuild "
    'mmcv with CUDA (`make clean-venv && FORCE_CUDA=1 make install` on a machine with nvcc), '
    "or use deform_impl='torch' (the pure-PyTorch path, which also runs on CUDA).")


def choose_impl(impl: str, device_type: str, mmcv_ops: bool, mmcv_cuda: bool) -> str:
    """The concrete implementation (``'mmcv'`` or ``'torch'``) that ``impl`` means on a device
    of ``device_type``, given what mmcv was compiled with; raises where none can run."""
    if impl not in DEFORM_IMPLS:
        raise ValueError(f'deform_impl must be one of {DEFORM_IMPLS}, got {impl!r}')
    if impl == 'torch':
        return 'torch'
    if impl == 'mmcv' and not mmcv_ops:
        raise RuntimeError(
            "deform_impl='mmcv' needs mmcv compiled with its ops (MMCV_WITH_OPS=1), but "
            f'`from mmcv.ops import modulated_deform_conv2d` failed ({_mmcv_ops_error()}). '
            "Rebuild mmcv with `make install`, or use deform_impl='torch' or 'auto'.")
    if device_type == 'cuda' and not mmcv_cuda:
        raise RuntimeError(MMCV_WITHOUT_CUDA.format(impl=impl))
    if impl == 'auto':
        return 'mmcv' if device_type == 'cuda' else 'torch'
    return 'mmcv'


def resolve_impl(impl: str, device: torch.device) -> str:
    """The concrete implementation ``'mmcv'`` or ``'torch'`` that ``impl`` means on ``device``."""
    cuda = device.type == 'cuda'
    return choose_impl(impl, device.type, mmcv_ops_available(), cuda and mmcv_cuda_available())


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
    """Modulated deformable conv 2d (DCNv2) with mmcv's argument order and tensor layout,
    computed in float32 (or float64) whatever autocast or the model's dtype (module notes)."""
    if torch.onnx.is_in_onnx_export():
        return deform_conv2d_onnx(x, offset, mask, weight, bias, stride, padding, dilation, groups,
                                  deform_groups)
    device_type = x.device.type
    autocast = torch.is_autocast_enabled(device_type)
    tensors = (x, offset, mask, weight, bias)
    if autocast or any(t is not None and t.dtype not in FULL_PRECISION for t in tensors):
        out_dtype = torch.get_autocast_dtype(device_type) if autocast else x.dtype
        double = x.dtype == weight.dtype == torch.float64
        dtype = torch.float64 if double else torch.float32
        with torch.autocast(device_type, enabled=False):
            out = _deform_conv(*(None if t is None else t.to(dtype) for t in tensors), stride,
                               padding, dilation, groups, deform_groups, impl)
        return out.to(out_dtype)
    return _deform_conv(x, offset, mask, weight, bias, stride, padding, dilation, groups,
                        deform_groups, impl)


def _deform_conv(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor, bias: Optional[Tensor],
                 stride, padding, dilation, groups: int, deform_groups: int, impl: str) -> Tensor:
    """The op in the tensors' own (full) precision, by the implementation ``impl`` resolves to."""
    if resolve_impl(impl, x.device) == 'mmcv':
        # mmcv's kernels read their inputs as contiguous NCHW: a channels-last tensor would
        # give a wrong result without an error.
        from mmcv.ops import modulated_deform_conv2d as mmcv_modulated_deform_conv2d
        return mmcv_modulated_deform_conv2d(x.contiguous(), offset.contiguous(), mask.contiguous(),
                                            weight.contiguous(), bias, stride, padding, dilation,
                                            groups, deform_groups)
    return modulated_deform_conv2d_torch(x, offset, mask, weight, bias, stride, padding, dilation,
                                         groups, deform_groups)


class DispatchingDeformConv2dPack(MMCVModulatedDeformConv2dPack):
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
