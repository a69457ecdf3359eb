"""DAS-MobileNetV2: MobileNetV2 with DAS gates after chosen inverted-residual layers.

Layer indices follow the host's ``out_indices`` numbering (0-6: ``layer1``-``layer7``; 7 is
``conv2``, the final 1x1 conv, which takes no gate). The default ``(1, 2, 4, 6)`` gates the last
layer of each resolution level, strides 4, 8, 16 and 32 (Salajegheh et al., 2023, put gates
at the four resolution levels of MobileNetV2).
"""
from typing import Dict, List, Optional, Sequence

import torch.nn as nn
from mmdet.models.backbones import MobileNetV2 as MMDetMobileNetV2
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.utils import is_seq_of
from torch import Tensor

from .das_backbone import StageGatesMixin, gate_config

GATEABLE = tuple(range(7))


def _check_gate_indices(gate_indices) -> None:
    if (not isinstance(gate_indices, (list, tuple)) or not is_seq_of(gate_indices, int)
            or not set(gate_indices) <= set(GATEABLE)
            or len(set(gate_indices)) != len(gate_indices)):
        raise ValueError(f'gate_indices must be distinct layer indices from {GATEABLE} '
                         f'(layer1-layer7; 7 is the final 1x1 conv2, which takes no gate), '
                         f'got {gate_indices!r}')


def _layer_channels(backbone: nn.Module, index: int) -> int:
    """Output channels of a layer: those of the last conv of its last block."""
    last_block = getattr(backbone, backbone.layers[index])[-1]
    return [m for m in last_block.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


MMDET_BLOCK_CONVS = ('expand_conv', 'depthwise_conv', 'linear_conv')


def _block_conv_names(block: nn.Module) -> List[str]:
    """mmdet's names of an inverted-residual block's convs, in order; the expansion conv is
    absent where the expand ratio is 1. mmpretrain keeps the same convs in ``block.conv``."""
    count = len(block.conv) if hasattr(block, 'conv') else sum(
        hasattr(block, name) for name in MMDET_BLOCK_CONVS)
    return list(MMDET_BLOCK_CONVS[-count:])


def convert_mobilenet_v2_keys(state: Dict[str, Tensor], backbone: nn.Module) -> Dict[str, Tensor]:
    """Rename block conv keys between mmpretrain (``conv.<k>``) and mmdet (``expand_conv``,
    ``depthwise_conv``, ``linear_conv``) layouts, to whichever ``backbone`` uses."""
    to_mmdet = hasattr(getattr(backbone, backbone.layers[0])[0], 'linear_conv')
    converted = {}
    for key, value in state.items():
        parts = key.split('.')
        if len(parts) > 3 and parts[0] in backbone.layers[:-1] and parts[1].isdigit():
            block = getattr(backbone, parts[0])[int(parts[1])]
            names = _block_conv_names(block)
            if to_mmdet and parts[2] == 'conv' and parts[3].isdigit():
                parts[2:4] = [names[int(parts[3])]]
            elif not to_mmdet and parts[2] in MMDET_BLOCK_CONVS:
                parts[2:3] = ['conv', str(names.index(parts[2]))]
        converted['.'.join(parts)] = value
    return converted


class DASMobileNetV2Mixin(StageGatesMixin):
    """Shared constructor of the gated MobileNetV2 flavours.

    Args:
        gate_indices: layers (0-6) followed by a gate; default one per stride 4/8/16/32.
        gate, alpha, deform_impl, freeze_gates: as for :class:`~mmdas.models.DASResNet`.
        **kwargs: everything the framework's ``MobileNetV2`` takes.
    """

    def __init__(self,
                 gate_indices: Sequence[int] = (1, 2, 4, 6),
                 gate: Optional[dict] = None,
                 alpha: Optional[float] = None,
                 deform_impl: Optional[str] = None,
                 freeze_gates: bool = False,
                 **kwargs) -> None:
        _check_gate_indices(gate_indices)
        cfg = gate_config(gate, alpha, deform_impl)
        super().__init__(**kwargs)
        indices = sorted(gate_indices)
        self._add_gates([self.layers[i] for i in indices],
                        [_layer_channels(self, i) for i in indices], cfg, freeze_gates)

    def convert_pretrained(self, state: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Accept the other framework's MobileNetV2 checkpoints too (other block key names)."""
        return convert_mobilenet_v2_keys(state, self)


@MMDET_MODELS.register_module(name='DASMobileNetV2')
class DASMobileNetV2(DASMobileNetV2Mixin, MMDetMobileNetV2):
    """mmdet MobileNetV2 with gates (see :class:`DASMobileNetV2Mixin` for the arguments)."""
