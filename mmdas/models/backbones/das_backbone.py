"""What every DAS backbone shares: gates appended to host stages, freezing, checked loading."""
from typing import Dict, List, Sequence

from torch import Tensor

from mmdas.models.plugins import DASGate

from .pretrained import is_pretrained_cfg, load_checked


class DASGatesMixin:
    """Mixin for a host backbone whose stages are ``nn.Sequential`` attributes.

    A gate is appended to a stage as its last module, ``<stage>.das_gate``, so it runs after the
    stage's last block (after that block's residual sum) and the host's own forward, ``with_cp``,
    plugins and state-dict keys stay as they are.

    ``frozen_stages``: the host freezes (``requires_grad=False``, eval mode) the stages it always
    did. The gates are new, randomly initialised layers, so by default they stay trainable even
    inside a frozen stage (fine-tuning a frozen pretrained backbone must still train them); pass
    ``freeze_gates=True`` to freeze the gates of frozen stages too.
    """

    def _add_das_gates(self, stage_names: Sequence[str], channels: Sequence[int], alpha: float,
                       deform_impl: str, freeze_gates: bool) -> None:
        self.das_stage_names = tuple(stage_names)
        self.freeze_gates = freeze_gates
        for name, num_channels in zip(stage_names, channels):
            getattr(self, name).add_module('das_gate', DASGate(num_channels, alpha, deform_impl))
        self._freeze_stages()

    def das_gates(self) -> List[DASGate]:
        return [getattr(self, name).das_gate for name in getattr(self, 'das_stage_names', ())]

    def _frozen_stage_names(self) -> List[str]:
        return [f'layer{i}' for i in range(1, self.frozen_stages + 1)]

    def _freeze_stages(self) -> None:
        super()._freeze_stages()
        if getattr(self, 'freeze_gates', True):
            return
        frozen = set(self._frozen_stage_names())
        for name in self.das_stage_names:
            if name in frozen:
                gate = getattr(self, name).das_gate
                gate.train(self.training)
                for param in gate.parameters():
                    param.requires_grad = True

    def convert_pretrained(self, state: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Rename a pretrained state dict's keys to this backbone's; identity by default."""
        return state

    def init_weights(self) -> None:
        """Host init, then the gates' own init, then (if asked) checked pretrained loading."""
        pretrained = self.init_cfg if is_pretrained_cfg(self.init_cfg) else None
        if pretrained is not None:
            self.init_cfg = None
        super().init_weights()
        for gate in self.das_gates():
            gate.init_weights()
        if pretrained is not None:
            self.init_cfg = pretrained
            load_checked(self, pretrained, convert=self.convert_pretrained)


def check_stage_flags(gate_stages: Sequence[bool], num_stages: int) -> None:
    if (not isinstance(gate_stages, (list, tuple)) or len(gate_stages) != num_stages
            or not all(isinstance(flag, bool) for flag in gate_stages)):
        raise ValueError(f'gate_stages must be a list of {num_stages} bools (one per stage, '
                         f'True = a DAS gate after its last block), got {gate_stages!r}')


DAS_ONLY_ARGS = ('gate_stages', 'gate_indices', 'alpha', 'deform_impl', 'freeze_gates')
PLAIN_TYPES = {'DASResNet': 'ResNet', 'DASResNet_CIFAR': 'ResNet_CIFAR',
               'DASMobileNetV2': 'MobileNetV2'}


def plain_backbone_cfg(backbone: dict) -> dict:
    """The same backbone config without DAS gates (the like-for-like baseline)."""
    if backbone.get('type') not in PLAIN_TYPES:
        raise ValueError(f'backbone type must be one of {tuple(PLAIN_TYPES)}, '
                         f"got {backbone.get('type')!r}")
    plain = {k: v for k, v in backbone.items() if k not in DAS_ONLY_ARGS}
    plain['type'] = PLAIN_TYPES[backbone['type']]
    return plain
