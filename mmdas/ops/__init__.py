from .deform_conv_torch import modulated_deform_conv2d_torch
from .modulated_deform_conv import (DEFORM_IMPLS, DispatchingDeformConv2dPack, check_impl,
                                    choose_impl, mmcv_cuda_available, mmcv_ops_available,
                                    modulated_deform_conv2d, resolve_impl)

__all__ = [
    'DEFORM_IMPLS', 'DispatchingDeformConv2dPack', 'check_impl', 'choose_impl',
    'mmcv_cuda_available', 'mmcv_ops_available', 'modulated_deform_conv2d',
    'modulated_deform_conv2d_torch', 'resolve_impl'
]
