"""Parameters and multiply-adds that count the deformable conv.

mmengine's ``FlopAnalyzer`` (fvcore's jit tracer) counts multiply-adds ("FLOPs" in its tables
are MACs) of the ops it has handles for and silently skips custom ops such as mmcv's
``ModulatedDeformConv2dFunction``. We add handles for it and for the pure-PyTorch path's
``SampledConvFunction`` (sparse bilinear sampling, then a conv over the sampled taps). Both
count a deformable conv as a dense conv of the same shape, ``C_out * C_in / groups * kh * kw *
H_out * W_out``, plus its bilinear sampling, 4 multiply-adds per sampled value (``N * C_in * kh *
kw * H_out * W_out`` values); only the mask multiply is left out, as for any elementwise op.

The "paper-comparable" figure leaves the deformable convs' own weights and multiply-adds out,
as common counters did for the paper's table (their offset convs are ordinary convs and stay).

The attention modules DAS is compared with reduce maps in ways the analyzer also skips
(``mean`` and ``amax`` pooling, ``logsumexp``, ``sum``, ``softmax``): each is counted as one
operation per input element, as mmengine counts average pooling. Pointwise ops (activations,
sums, products such as a gate's ``x * A``) stay uncounted for every model, as in mmengine.
"""
import math
from dataclasses import dataclass
from typing import Any, List, Tuple

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape

from mmdas.models.backbones import named_gates
from mmdas.ops import DispatchingDeformConv2dPack

#: mmcv's deformable-conv functions and where each takes its weight.
MMCV_DCN_OPS = {
    'prim::PythonOp.ModulatedDeformConv2dFunction': 3,
    'prim::PythonOp.DeformConv2dFunction': 2
}
TORCH_DCN_OP = 'prim::PythonOp.SampledConvFunction'


def deform_conv_flop_jit(weight_index: int):
    """A handle for one of mmcv's deformable-conv functions that counts dense-conv MACs + 4 per
    sampled value. The function's own signature fixes where the weight is (``(input, offset,
    mask, weight[, bias])`` for the modulated one, ``(input, offset, weight)`` for the plain
    one): an optional bias only ever comes after it."""

    def handle(inputs: List[Any], outputs: List[Any]) -> int:
        c_in = get_shape(inputs[0])[1]
        c_out, c_in_per_group, kh, kw = get_shape(inputs[weight_index])
        n, _, h_out, w_out = get_shape(outputs[0])
        positions = n * kh * kw * h_out * w_out
        return positions * (c_out * c_in_per_group + 4 * c_in)

    return handle


def sampled_conv_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of :class:`mmdas.ops.deform_conv_torch.SampledConvFunction`, counted the same way.

    Its inputs are the table ``(rows, C_in / deform_groups)``, the corner rows and the corner
    weights ``(points, 4)`` (one point per output position, tap and deformable group) and the
    weight ``(C_out, C_in / groups, kh, kw)``; its output is ``(N, C_out, H_out, W_out)``.
    """
    group_channels = get_shape(inputs[0])[1]
    points = get_shape(inputs[1])[0]
    c_out, c_in_per_group, kh, kw = get_shape(inputs[3])
    n, _, h_out, w_out = get_shape(outputs[0])
    return n * c_out * h_out * w_out * c_in_per_group * kh * kw + 4 * points * group_channels


REDUCTION_OPS = ('aten::mean', 'aten::amax', 'aten::sum', 'aten::logsumexp', 'aten::softmax')


def reduction_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """One operation per element of the reduced (or softmax-normalised) input."""
    return math.prod(get_shape(inputs[0]))


def _deform_modules(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    kinds = [DispatchingDeformConv2dPack]
    try:
        from mmcv.ops import DeformConv2d, ModulatedDeformConv2d
        kinds += [DeformConv2d, ModulatedDeformConv2d]
    except ImportError:
        pass
    return [(name, m) for name, m in model.named_modules() if isinstance(m, tuple(kinds))]


@dataclass
class Complexity:
    """Counts for one model and input; MACs are multiply-adds. ``gate_*`` count the model's
    gates (whichever the config names: ``gate_types``), ``deform_*`` its deformable convs."""
    params: int
    macs: int
    gate_params: int
    gate_macs: int
    deform_params: int
    deform_macs: int
    gate_types: Tuple[str, ...] = ()

    @property
    def paper_params(self) -> int:
        """Parameters without the deformable convs' own weights (paper-comparable)."""
        return self.params - self.deform_params

    @property
    def paper_macs(self) -> int:
        """MACs without the deformable convs' own multiply-adds (paper-comparable)."""
        return self.macs - self.deform_macs


def analyze(model: nn.Module, inputs: Any) -> Complexity:
    """Count ``model(inputs)``; its gates (:func:`~mmdas.models.backbones.named_gates`) and
    deformable convs are also counted on their own."""
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, inputs)
        for op, weight_index in MMCV_DCN_OPS.items():
            analyzer.set_op_handle(op, deform_conv_flop_jit(weight_index))
        analyzer.set_op_handle(TORCH_DCN_OP, sampled_conv_flop_jit)
        for op in REDUCTION_OPS:
            analyzer.set_op_handle(op, reduction_flop_jit)
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        macs = analyzer.by_module()
    params = parameter_count(model)
    gates = named_gates(model)
    deforms = _deform_modules(model)

    def own_macs(name: str, module: nn.Module) -> int:
        offset = f'{name}.conv_offset' if name else 'conv_offset'
        return macs[name] - (macs[offset] if hasattr(module, 'conv_offset') else 0)

    def own_params(module: nn.Module) -> int:
        return sum(p.numel() for n, p in module.named_parameters()
                   if not n.startswith('conv_offset'))

    return Complexity(
        params=params[''],
        macs=macs[''],
        gate_params=sum(params[name] for name, _ in gates),
        gate_macs=sum(macs[name] for name, _ in gates),
        deform_params=sum(own_params(m) for _, m in deforms),
        deform_macs=sum(own_macs(n, m) for n, m in deforms),
        gate_types=tuple(sorted({type(gate).__name__
                                 for _, gate in gates})))
