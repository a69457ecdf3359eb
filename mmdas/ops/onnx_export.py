"""ONNX export of the modulated deformable conv as one standard ``DeformConv`` node.

ONNX's ``DeformConv`` (opset 19) is DCNv2 with mmcv's tensor layout: offsets ``(dy, dx)`` per
kernel tap, taps in row-major order, one block per offset group, an optional mask. ONNX Runtime
runs it on CPU, so an exported DAS model needs no custom operator library.

:func:`mmdas.ops.modulated_deform_conv2d` routes here whenever ``torch.onnx.is_in_onnx_export()``
is true, whatever ``deform_impl`` says, so both of torch's exporters write that one node:

* the default exporter (``torch.onnx.export(model, args, path)``, ``dynamo=True``) traces with
  ``torch.export``; :func:`torch.onnx.ops.symbolic` puts the node into the traced program;
* the TorchScript exporter (``dynamo=False``) traces with ``torch.jit``; an autograd Function
  with a ``symbolic`` method stands for the node (without one, the exporter would inline the
  traced Python of the pure-PyTorch path: a graph that runs but computes something else).

``DeformConv`` exists from opset 19 on (torch 2.14's default is 20). The TorchScript exporter
refuses an older ``opset_version`` with an error; the default exporter cannot see the opset
while tracing and writes a model that ONNX Runtime refuses to load (``No Op registered for
DeformConv``), never a model that runs and computes something else.
"""
import warnings
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

#: The first ONNX opset with ``DeformConv``.
DEFORM_CONV_OPSET = 19


def _pair(value) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def deform_conv_attributes(kernel: Tuple[int, int], stride, padding, dilation, groups: int,
                           deform_groups: int) -> Dict[str, List[int]]:
    """The ``DeformConv`` node's attributes for mmcv-style arguments."""
    pad_h, pad_w = _pair(padding)
    return dict(
        dilations=list(_pair(dilation)),
        group=int(groups),
        kernel_shape=list(kernel),
        offset_group=int(deform_groups),
        pads=[pad_h, pad_w, pad_h, pad_w],
        strides=list(_pair(stride)))


class DeformConvForTorchScriptExport(torch.autograd.Function):
    """Stands for the ``DeformConv`` node under the TorchScript exporter (``dynamo=False``).

    ``forward`` computes the value the tracer records (the pure-PyTorch path); ``symbolic``
    writes the node.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, offset: Tensor, bias: Optional[Tensor],
                mask: Tensor, stride, padding, dilation, groups: int, deform_groups: int) -> Tensor:
        from .deform_conv_torch import modulated_deform_conv2d_torch
        with warnings.catch_warnings():  # the traced value only; the node is `symbolic`'s
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            return modulated_deform_conv2d_torch(x, offset, mask, weight, bias, stride, padding,
                                                 dilation, groups, deform_groups)

    @staticmethod
    def symbolic(g, x, weight, offset, bias, mask, stride, padding, dilation, groups,
                 deform_groups):
        if g.opset < DEFORM_CONV_OPSET:
            raise RuntimeError(
                f'the deformable conv exports as ONNX DeformConv, which needs opset_version >= '
                f'{DEFORM_CONV_OPSET}; got opset_version={g.opset}. Export with '
                f'opset_version={DEFORM_CONV_OPSET} or later (torch\'s default is 20).')
        kernel = weight.type().sizes()[2:]
        if bias is None or bias.node().mustBeNone():
            bias = g.op('Constant', value_t=torch.zeros(weight.type().sizes()[0]))
        attrs = deform_conv_attributes(
            tuple(kernel), stride, padding, dilation, groups, deform_groups)
        return g.op('DeformConv', x, weight, offset, bias, mask, **{
            f'{name}_i': value
            for name, value in attrs.items()
        })


def deform_conv2d_onnx(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor,
                       bias: Optional[Tensor], stride, padding, dilation, groups: int,
                       deform_groups: int) -> Tensor:
    """The modulated deformable conv as one ONNX ``DeformConv`` node, for either exporter."""
    if torch.jit.is_tracing():  # the TorchScript exporter
        return DeformConvForTorchScriptExport.apply(x, weight, offset, bias, mask, stride, padding,
                                                    dilation, groups, deform_groups)
    kh, kw = weight.shape[2], weight.shape[3]
    attrs = deform_conv_attributes((int(kh), int(kw)), stride, padding, dilation, groups,
                                   deform_groups)
    (pad_h, pad_w), (dil_h, dil_w) = _pair(padding), _pair(dilation)
    (step_h, step_w) = _pair(stride)
    out_h = (x.shape[2] + 2 * pad_h - dil_h * (kh - 1) - 1) // step_h + 1
    out_w = (x.shape[3] + 2 * pad_w - dil_w * (kw - 1) - 1) // step_w + 1
    return torch.onnx.ops.symbolic(
        '::DeformConv', (x, weight, offset, bias, mask),
        attrs,
        dtype=x.dtype,
        shape=(x.shape[0], weight.shape[0], out_h, out_w),
        version=DEFORM_CONV_OPSET)
