"""Gates after the stages of any registered CNN backbone, from a config.

    backbone=dict(type='GatedBackbone', host='CSPNeXt', stages=('stage1', 'stage2', 'stage3',
                  'stage4'), gate=dict(type='DASGate', alpha=0.2), **the host's own arguments)

The paper puts a DAS gate after each stage of a CNN (Salajegheh et al., 2023, Sec. 3). Here the
host is built exactly as its framework builds it (a subclass that adds nothing to its
``__init__`` arguments), and each gate runs on its stage's output through a forward hook on
the stage module. The host's modules, forward, ``out_indices``, ``frozen_stages``,
``norm_eval`` and state-dict keys stay its own; the gates live in ``gates`` (keys
``gates.<stage>.*``, dots as ``_``), so a checkpoint of the plain host, or of a plain detector
or classifier, loads with only the gates missing. Each gate's width is read from its stage's
output in a dry forward at build time. A stage whose output is not one ``(N, C, H, W)`` map
(HRNet's branch lists, a transformer's tokens) is refused by name.
"""
import functools
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from ..runtime_class import host_class, reduce_by_maker
from .das_backbone import build_gate, checkpointed, init_gates
from .pretrained import init_then_load_checked

#: The input of the dry forward that measures each stage's width.
PROBE_SIZE = 64


def _apply_gate(stage: nn.Module, inputs: Tuple, output: Tensor) -> Tensor:
    """The forward hook on a gated stage: its output through its gate. A module-level function
    that finds the gate on the stage, so ``copy.deepcopy`` (EMA) gives the copy its own gate."""
    gate, with_cp = stage.__dict__['_gate']
    if with_cp and torch.is_grad_enabled() and gate.training and output.requires_grad:
        return checkpointed(gate, gate, output)
    return gate(output)


def gate_key(stage: str) -> str:
    """A stage's key in ``gates`` (a ModuleDict key has no dots)."""
    return stage.replace('.', '_')


def is_frozen(module: nn.Module) -> bool:
    """Whether the host froze ``module``: it has parameters and none trains."""
    params = list(module.parameters())
    return bool(params) and not any(p.requires_grad for p in params)


class GatedHostMixin:
    """Adds ``stages``, ``gate`` and ``freeze_gates`` to a host backbone class.

    ``freeze_gates=False`` (default): the gates train in every mode the host sets, also inside
    its ``frozen_stages`` and under ``norm_eval`` (new layers must learn, as in the DAS
    backbones); ``True``: a gate whose stage the host froze is frozen with it.
    """

    def __init__(self,
                 *args,
                 stages: Sequence[str] = (),
                 gate: Optional[dict] = None,
                 freeze_gates: bool = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        host = host_name(self)
        if isinstance(stages, str) or not stages:
            raise ValueError(f'stages: name the modules of {host} after which a gate goes, e.g. '
                             f'{candidate_stages(self)[:4]}; got {stages!r}')
        gate = dict(type='DASGate') if gate is None else gate
        if not isinstance(gate, dict) or 'type' not in gate or 'in_channels' in gate:
            raise ValueError("gate must be a config dict with a 'type' and without "
                             f"in_channels (each stage sets its own), got {gate!r}")
        modules = dict(self.named_modules())
        unknown = [s for s in stages if s not in modules or s == '']
        if unknown:
            raise ValueError(f'stages {unknown} are not modules of {host}; its stages: '
                             f'{candidate_stages(self)}')
        if len({gate_key(s) for s in stages}) != len(stages):
            raise ValueError(f'stages must name each stage once, got {list(stages)}')
        self.gated_stages = tuple(stages)
        self.gates = nn.ModuleDict({
            gate_key(name): build_gate(gate, channels)
            for name, channels in zip(
                stages, stage_channels(self, stages, host, kwargs.get('in_channels', 3)))
        })
        # the host's memory switch (mmpretrain's ConvNeXt passes it to its blocks only)
        with_cp = bool(kwargs.get('with_cp', getattr(self, 'with_cp', False)))
        for name in stages:
            modules[name].__dict__['_gate'] = (self.gates[gate_key(name)], with_cp)
            modules[name].register_forward_hook(_apply_gate)
        self.frozen_gates = ()
        self.train(self.training)  # some hosts freeze their frozen_stages in train() only
        self.frozen_gates = tuple(
            name for name in stages if freeze_gates and is_frozen(modules[name]))
        for name in self.frozen_gates:
            self.gates[gate_key(name)].requires_grad_(False)
        self.train(self.training)

    def stage_gates(self) -> List[nn.Module]:
        """The gates, first stage first (``mmdas.models.named_gates`` finds them here)."""
        if not hasattr(self, 'gates'):  # the host's own __init__ calls train() before
            return []
        return [self.gates[gate_key(name)] for name in self.gated_stages]

    def is_gate_key(self, key: str) -> bool:
        """Whether a state-dict key is a gate's (the keys a plain checkpoint lacks)."""
        return key.startswith('gates.')

    def train(self, mode: bool = True) -> 'GatedHostMixin':
        """The host's ``train`` (``norm_eval``, ``frozen_stages``: its BatchNorms, the gates'
        included, may go to eval), then each gate back to ``mode``; a gate frozen with its
        stage (``freeze_gates``) stays in eval. Modes only: ``requires_grad`` is set once, when
        the model is built."""
        super().train(mode)
        for name, gate in zip(getattr(self, 'gated_stages', ()), self.stage_gates()):
            gate.train(mode and name not in self.frozen_gates)
        return self

    def __reduce_ex__(self, protocol: int) -> tuple:
        return reduce_by_maker(self, protocol, gated_class, GatedHostMixin)

    def init_weights(self) -> None:
        """The host's init, then the gates' own (hosts re-init every conv), then a
        ``Pretrained`` ``init_cfg`` loaded with only the gates allowed missing."""
        init_then_load_checked(self,
                               super().init_weights, lambda: init_gates(self.stage_gates()),
                               self.is_gate_key)


def host_name(model: nn.Module) -> str:
    return host_class(model, GatedHostMixin).__name__


def candidate_stages(model: nn.Module) -> List[str]:
    """The modules that look like stages: the host's own stage list where it has one
    (``layers`` or ``res_layers`` names), else its ``nn.Sequential`` children and the items of
    its ``nn.ModuleList`` children."""
    for attr in ('res_layers', 'layers'):
        names = getattr(model, attr, None)
        if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) for n in names):
            return list(names)
    found = []
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            found += [f'{name}.{i}' for i in range(len(child))]
        elif isinstance(child, nn.Sequential):
            found.append(name)
    return found


def stage_channels(model: nn.Module,
                   stages: Sequence[str],
                   host: str,
                   in_channels: int = 3) -> List[int]:
    """Each stage's output channels, from a dry forward of an ``in_channels`` image in eval
    mode (no state changes)."""
    modules = dict(model.named_modules())
    seen: Dict[str, Tuple] = {}
    handles = [
        modules[name].register_forward_hook(
            lambda module, inputs, output, name=name: seen.setdefault(name, output))
        for name in stages
    ]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, PROBE_SIZE, PROBE_SIZE))
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)
    channels = []
    for name in stages:
        output = seen.get(name)
        if output is None:
            raise ValueError(f'stage {name!r} of {host} does not run in its forward '
                             f'(out_indices or num_stages leave it out?)')
        if not isinstance(output, Tensor) or output.dim() != 4:
            kind = f'a {type(output).__name__}' if not isinstance(output, Tensor) else \
                f'a {output.dim()}-d tensor'
            raise ValueError(
                f'stage {name!r} of {host} returns {kind}, not one (N, C, H, W) feature map: '
                f'a gate needs a CNN stage (HRNet\'s stages return lists of branches, '
                f'transformers return tokens); gate a CNN host such as CSPNeXt, ResNet, '
                f'ConvNeXt or EfficientNet')
        channels.append(output.shape[1])
    return channels


@functools.lru_cache(maxsize=None)
def gated_class(host_cls: type) -> type:
    """The host class with :class:`GatedHostMixin` (one per host class, named Gated<Host>)."""
    return type(f'Gated{host_cls.__name__}', (GatedHostMixin, host_cls), {
        '__doc__': f'{host_cls.__name__} with stage gates.',
        '__module__': __name__
    })


def gated_backbone_builder(registry):
    """The ``GatedBackbone`` type of ``registry``: builds ``host`` from that registry."""

    def GatedBackbone(host: str,
                      stages: Sequence[str] = (),
                      gate: Optional[dict] = None,
                      freeze_gates: bool = False,
                      **host_args) -> nn.Module:
        if not isinstance(host, str):
            raise ValueError(f"host must be a backbone type name, e.g. host='CSPNeXt', got "
                             f'{host!r}')
        host_cls = registry.get(host)
        if host_cls is None:
            raise ValueError(f'host {host!r} is not a registered model of {registry.scope}')
        if not (isinstance(host_cls, type) and issubclass(host_cls, nn.Module)):
            raise ValueError(f'host {host!r} is not a backbone class')
        return gated_class(host_cls)(
            stages=stages, gate=gate, freeze_gates=freeze_gates, **host_args)

    return GatedBackbone
