"""Export a model to ONNX and check the file in ONNX Runtime against PyTorch.

The DAS gate's deformable conv exports as the standard ONNX ``DeformConv`` (opset >= 19, see
:mod:`mmdas.ops.onnx_export`), so an exported DAS model needs nothing but ONNX Runtime.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from mmdas.ops.onnx_export import DEFORM_CONV_OPSET

EXPORTERS = ('dynamo', 'torchscript')
#: The check: ``max |onnx - torch| <= RTOL * max |torch| + ATOL`` per output (float32 noise
#: through a ResNet-50 is ~1e-6 of the output's scale).
RTOL, ATOL = 1e-4, 1e-5


def export_onnx(model: nn.Module,
                example: Tensor,
                path: str,
                exporter: str = 'dynamo',
                dynamic_batch: bool = False,
                dynamic_shape: bool = False,
                opset: Optional[int] = None,
                output_names: Optional[Sequence[str]] = None,
                metadata: Optional[Dict[str, str]] = None) -> str:
    """Export ``model(example)`` to ``path`` (one input, named ``input``).

    ``dynamic_batch`` / ``dynamic_shape`` leave the batch size / the height and width free.
    ``exporter``: ``'dynamo'`` (torch's default, ``torch.export``) or ``'torchscript'``
    (``dynamo=False``). ``metadata`` goes into the model's ``metadata_props``.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f'exporter must be one of {EXPORTERS}, got {exporter!r}')
    if opset is not None and opset < DEFORM_CONV_OPSET and _has_deform_conv(model):
        raise ValueError(f'opset {opset}: the deformable convs export as ONNX DeformConv, which '
                         f'needs opset >= {DEFORM_CONV_OPSET} (leave opset unset for torch\'s 20)')
    free = ([0] if dynamic_batch else []) + ([2, 3] if dynamic_shape else [])
    kwargs = dict(input_names=['input'], opset_version=opset, verbose=False)
    if output_names:
        kwargs['output_names'] = list(output_names)
    if exporter == 'dynamo':
        shapes = {i: torch.export.Dim.DYNAMIC for i in free}
        name = next(iter(_forward_argument_names(model)))
        torch.onnx.export(
            model, (example, ),
            path,
            dynamic_shapes={name: shapes} if free else None,
            dynamo=True,
            external_data=False,
            **kwargs)
    else:
        axes = {0: 'batch', 2: 'height', 3: 'width'}
        dynamic = {'input': {i: axes[i] for i in free}} if free else None
        if dynamic and output_names:
            dynamic.update({out: {0: 'batch'} for out in output_names} if dynamic_batch else {})
        torch.onnx.export(model, (example, ), path, dynamo=False, dynamic_axes=dynamic, **kwargs)
    if metadata:
        import onnx
        proto = onnx.load(path)
        onnx.helper.set_model_props(proto, dict(metadata))
        onnx.save(proto, path)
    return path


def _has_deform_conv(model: nn.Module) -> bool:
    from mmcv.ops import DeformConv2d, ModulatedDeformConv2d
    return any(isinstance(m, (DeformConv2d, ModulatedDeformConv2d)) for m in model.modules())


def _forward_argument_names(model: nn.Module) -> List[str]:
    import inspect
    return [p for p in inspect.signature(model.forward).parameters]


def onnxruntime_outputs(path: str, inputs: Tensor) -> List[np.ndarray]:
    """Run the ONNX file in ONNX Runtime (CPU) on ``inputs``."""
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: inputs.detach().cpu().numpy()})


def operator_types(path: str) -> List[Tuple[str, str]]:
    """``(domain, op_type)`` of every node of the graph ('' is the standard ONNX domain)."""
    import onnx
    return [(node.domain, node.op_type) for node in onnx.load(path).graph.node]


@dataclass
class OutputCheck:
    """One output of an ONNX-vs-PyTorch comparison."""
    name: str
    shape: Tuple[int, ...]
    max_abs_diff: float
    allowed: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.allowed


def compare_outputs(torch_outputs: Sequence[Tensor],
                    onnx_outputs: Sequence[np.ndarray],
                    names: Sequence[str],
                    rtol: float = RTOL,
                    atol: float = ATOL) -> List[OutputCheck]:
    """Largest difference of each output against ``rtol * max |torch| + atol`` (the reference
    outputs as tensors or arrays)."""
    if len(torch_outputs) != len(onnx_outputs):
        raise ValueError(f'ONNX Runtime gave {len(onnx_outputs)} outputs, PyTorch '
                         f'{len(torch_outputs)}')
    checks = []
    for name, ref, out in zip(names, torch_outputs, onnx_outputs):
        ref = ref.detach().cpu().numpy() if isinstance(ref, Tensor) else np.asarray(ref)
        if ref.shape != out.shape:
            checks.append(OutputCheck(name, tuple(out.shape), float('inf'), 0.0))
            continue
        diff = float(np.abs(out - ref).max()) if ref.size else 0.0
        diff = float('inf') if np.isnan(diff) else diff
        checks.append(
            OutputCheck(name, tuple(ref.shape), diff,
                        rtol * float(np.abs(ref).max() if ref.size else 0) + atol))
    return checks


def nonstandard_operators(path: str) -> List[str]:
    """Nodes outside the standard ONNX domain (an ONNX Runtime without extra libraries
    cannot run them)."""
    return sorted(
        {f'{domain}::{op}'
         for domain, op in operator_types(path) if domain not in ('', 'ai.onnx')})
