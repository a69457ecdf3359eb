"""What every gated backbone shares: gates appended to host stages (checkpointed with the
host's ``with_cp``), freezing, checked loading; and how any model's gates are found."""
import contextlib
from collections import OrderedDict
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import Sequential
from mmengine.registry import MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from .pretrained import init_then_load_checked


def gate_config(gate: Optional[dict], alpha: Optional[float], deform_impl: Optional[str]) -> dict:
    """The gate's config: ``gate`` as given, or a ``DASGate`` with ``alpha`` / ``deform_impl``.

    ``alpha`` and ``deform_impl`` are ``DASGate``'s arguments, kept on the backbones so that
    ``DASResNet(depth=50, alpha=0.2)`` configs and checkpoints keep working; another gate takes
    its own arguments inside ``gate``. One value per setting: a value given both here and inside
    ``gate`` must be the same, otherwise a ``ValueError`` names both (neither silently wins, so
    ``--cfg-options model.backbone.alpha=...`` on a config whose gate sets alpha never trains a
    different width than the one typed).
    """
    if gate is None:
        return dict(
            type='DASGate',
            alpha=0.2 if alpha is None else alpha,
            deform_impl='auto' if deform_impl is None else deform_impl)
    if not isinstance(gate, dict) or 'type' not in gate:
        raise ValueError(f"gate must be a config dict with a 'type', e.g. dict(type='DASGate', "
                         f"alpha=0.2) or dict(type='CBAMGate'), got {gate!r}")
    if 'in_channels' in gate:
        raise ValueError('gate: leave in_channels out, each stage sets its own '
                         f'(got in_channels={gate["in_channels"]!r})')
    cfg = dict(gate)
    for name, value in (('alpha', alpha), ('deform_impl', deform_impl)):
        if value is None:
            continue
        if cfg['type'] != 'DASGate':
            raise ValueError(
                f'{name}={value!r} configures the DASGate, but gate is '
                f'{cfg["type"]!r}: put that gate\'s own arguments inside gate=dict(...)')
        if name in cfg and cfg[name] != value:
            raise ValueError(
                f'{name} is given twice with different values: {name}={value!r} on the backbone '
                f'and {name}={cfg[name]!r} inside gate=dict(type={cfg["type"]!r}, ...). Set it '
                f'in one place, e.g. --cfg-options model.backbone.gate.{name}={value!r} '
                f'(and leave model.backbone.{name} unset)')
        cfg[name] = value
    return cfg


def build_gate(cfg: dict, in_channels: int) -> nn.Module:
    """A gate from mmengine's root registry (every scope sees it), for ``in_channels``."""
    return MODELS.build(dict(cfg, in_channels=in_channels))


def gate_attribute(gate: nn.Module) -> str:
    """The name a gate gets in its stage: its class's ``_abbr_`` (``das_gate``,
    ``cbam_gate``, mmcv's ``context_block``...), as mmcv's plugins are named."""
    return getattr(type(gate), '_abbr_', type(gate).__name__.lower())


@contextlib.contextmanager
def batchnorm_statistics_kept(module: nn.Module) -> Iterator[None]:
    """Whatever runs inside leaves the running statistics of ``module``'s BatchNorms as they
    were: a checkpointed segment recomputed in backward must not count its batch twice."""
    buffers = [
        buffer for norm in module.modules() if isinstance(norm, _BatchNorm)
        for buffer in (norm.running_mean, norm.running_var, norm.num_batches_tracked)
        if buffer is not None
    ]
    saved = [buffer.clone() for buffer in buffers]
    try:
        yield
    finally:
        for buffer, value in zip(buffers, saved):
            buffer.copy_(value)


def checkpointed(fn: Callable[..., Tensor], module: nn.Module, *args) -> Tensor:
    """``fn(*args)`` as a checkpointed segment (non-reentrant, so ``module``'s parameters get
    gradients when the inputs need none): backward recomputes it, and the running statistics
    of ``module``'s BatchNorms are restored after the recomputation (a batch counts once)."""
    return checkpoint(
        fn,
        *args,
        use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), batchnorm_statistics_kept(module)))


@contextlib.contextmanager
def own_checkpoint_off(block: nn.Module, inside_segment: bool) -> Iterator[None]:
    """While ``block`` runs inside a checkpointed segment, its own ``with_cp`` is off (one
    recomputation, not two); the attribute reads as the host set it at every other time."""
    if not (inside_segment and getattr(block, 'with_cp', False)):
        yield
        return
    block.with_cp = False
    try:
        yield
    finally:
        block.with_cp = True  # it was True: the only case that turned it off


class HostStage(Sequential):
    """A host stage's blocks, as the host built them, followed by ``extra`` modules: the keys
    are the host's plus the extras'.

    mmdet's and mmseg's stages are mmengine modules whose ``init_weights`` applies the blocks'
    ``init_cfg`` (``zero_init_residual``); mmpretrain's and MobileNetV2's are plain
    ``nn.Sequential``, whose blocks the host's init never visits: this keeps whichever the host
    built."""

    def __init__(self, blocks: nn.Sequential, extra: Dict[str, nn.Module]) -> None:
        super().__init__(
            OrderedDict([*blocks.named_children(), *extra.items()]),
            init_cfg=getattr(blocks, 'init_cfg', None))
        self._host_inits_blocks = hasattr(blocks, 'init_weights')

    def init_weights(self) -> None:
        if self._host_inits_blocks:
            super().init_weights()


class GatedStage(HostStage):
    """A host stage followed by its gate, the last module (``<stage>.<gate>.*`` keys).

    With ``with_cp`` (the host's memory switch, which checkpoints each of its blocks) the
    stage's last block and the gate run as one checkpointed segment (``torch.utils.checkpoint``,
    non-reentrant, so gate parameters get gradients when the stage's input needs none, as in
    ``frozen_stages``): backward recomputes them, and neither the gate's activations nor its
    input are kept, only the last block's input, which the host keeps anyway. The block's own
    ``with_cp`` reads as the host set it (the host's tests assert it) and is off only while it
    runs inside the segment. BatchNorm running statistics are restored after the
    recomputation (CBAM's spatial branch has one).
    """

    def __init__(self, blocks: nn.Sequential, gate_name: str, gate: nn.Module,
                 with_cp: bool) -> None:
        super().__init__(blocks, {gate_name: gate})
        self.with_cp = with_cp

    def _tail(self, x: Tensor, in_segment: bool = False) -> Tensor:
        *_, last_block, gate = self
        with own_checkpoint_off(last_block, in_segment):
            return gate(last_block(x))

    def forward(self, x: Tensor) -> Tensor:
        *blocks, last_block, gate = self
        for block in blocks:
            x = block(x)
        needs_grad = x.requires_grad or any(
            p.requires_grad for module in (last_block, gate) for p in module.parameters())
        if self.with_cp and torch.is_grad_enabled() and needs_grad:
            return checkpointed(self._tail, nn.ModuleList([last_block, gate]), x, True)
        return self._tail(x)


class StageGatesMixin:
    """Mixin for a host backbone whose stages are ``nn.Sequential`` attributes.

    A gate is appended to a stage as its last module, ``<stage>.<gate _abbr_>`` (a DAS gate:
    ``layer4.das_gate``; the stage becomes a :class:`GatedStage`), so it runs after the stage's
    last block (after that block's residual sum) and the host's own forward, plugins and
    state-dict keys stay as they are; the host's ``with_cp`` checkpoints the gates too.

    ``frozen_stages``: the host freezes (``requires_grad=False``, eval mode) the stages it always
    did. The gates are new, randomly initialised layers, so by default they stay trainable even
    inside a frozen stage (fine-tuning a frozen pretrained backbone must still train them); pass
    ``freeze_gates=True`` to freeze the gates of frozen stages too.
    """

    def _add_gates(self, stage_names: Sequence[str], channels: Sequence[int], gate_cfg: dict,
                   freeze_gates: bool) -> None:
        self.gated_stages = tuple(stage_names)
        self.freeze_gates = freeze_gates
        self.gate_name = None
        for name, num_channels in zip(stage_names, channels):
            gate = build_gate(gate_cfg, num_channels)
            self.gate_name = gate_attribute(gate)
            setattr(
                self, name,
                GatedStage(
                    getattr(self, name), self.gate_name, gate, getattr(self, 'with_cp', False)))
        self._freeze_stages()

    def stage_gates(self) -> List[nn.Module]:
        """The stage gates, first stage first (DAS gates or whichever ``gate`` configures)."""
        return [
            getattr(getattr(self, name), self.gate_name)
            for name in getattr(self, 'gated_stages', ())
        ]

    def is_gate_key(self, key: str) -> bool:
        """Whether a state-dict key belongs to one of the stage gates."""
        return self.gate_name is not None and f'.{self.gate_name}.' in f'.{key}'

    def _frozen_stage_names(self) -> List[str]:
        return [f'layer{i}' for i in range(1, self.frozen_stages + 1)]

    def _freeze_stages(self) -> None:
        super()._freeze_stages()
        if getattr(self, 'freeze_gates', True):
            return
        frozen = set(self._frozen_stage_names())
        for name, gate in zip(self.gated_stages, self.stage_gates()):
            if name in frozen:
                gate.train(self.training)
                for param in gate.parameters():
                    param.requires_grad = True

    def train(self, mode: bool = True):
        """The host's ``train``, then each gate back to ``mode``.

        With ``norm_eval=True`` (every COCO config) the host puts every ``_BatchNorm`` under the
        backbone in eval mode, the gates' own included (CBAM's and Triplet Attention's spatial
        branches): their fresh running statistics would stay at (0, 1). A gate is a new layer
        that must learn them, so it follows ``mode``; gates frozen with ``freeze_gates=True`` in
        ``frozen_stages`` stay in eval mode, as their stage does.
        """
        super().train(mode)
        frozen = set(self._frozen_stage_names()) if getattr(self, 'freeze_gates', False) else ()
        for name, gate in zip(getattr(self, 'gated_stages', ()), self.stage_gates()):
            if name not in frozen:
                gate.train(mode)
        return self

    def convert_pretrained(self, state: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Rename a pretrained state dict's keys to this backbone's; identity by default."""
        return state

    def init_weights(self) -> None:
        """Host init, then the gates' own init, then (if asked) checked pretrained loading."""
        init_then_load_checked(self,
                               super().init_weights, self._init_gates, self.is_gate_key,
                               self.convert_pretrained)

    def _init_gates(self) -> None:
        init_gates(self.stage_gates())


def init_gates(gates: Sequence[nn.Module]) -> None:
    """Each gate's own init, after the host's (hosts re-init every Conv2d; a gate starts its
    own way: a DAS gate with zero offsets)."""
    for gate in gates:
        if hasattr(gate, 'init_weights'):
            gate.init_weights()


PLUGIN_POSITIONS = ('after_conv1', 'after_conv2', 'after_conv3')


def named_gates(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """Every gate in ``model`` with its module name, whatever its class: those a module lists
    itself (a gated backbone's :meth:`StageGatesMixin.stage_gates`), and the plugins mmcv's
    ``build_plugin_layer`` put into a host's blocks (the blocks' ``<position>_plugin_names``)."""
    names = {id(module): name for name, module in model.named_modules()}
    gates = []
    for name, module in model.named_modules():
        if callable(getattr(module, 'stage_gates', None)):
            gates += [(names[id(gate)], gate) for gate in module.stage_gates()]
        for position in PLUGIN_POSITIONS:
            for plugin in getattr(module, f'{position}_plugin_names', None) or ():
                gates.append((f'{name}.{plugin}' if name else plugin, getattr(module, plugin)))
    return gates


def check_stage_flags(gate_stages: Sequence[bool], num_stages: int) -> None:
    if (not isinstance(gate_stages, (list, tuple)) or len(gate_stages) != num_stages
            or not all(isinstance(flag, bool) for flag in gate_stages)):
        raise ValueError(f'gate_stages must be a list of {num_stages} bools (one per stage, '
                         f'True = a gate after its last block), got {gate_stages!r}')


GATE_ARGS = ('gate', 'gate_stages', 'gate_indices', 'alpha', 'deform_impl', 'freeze_gates')
GATED_BACKBONE_ARGS = ('type', 'host', 'stages', 'gate', 'freeze_gates')
PLAIN_TYPES = {
    'DASResNet': 'ResNet',
    'DASResNet_CIFAR': 'ResNet_CIFAR',
    'DASResNetV1c': 'ResNetV1c',
    'DASResNetV1d': 'ResNetV1d',
    'DASResNeXt': 'ResNeXt',
    'DASRes2Net': 'Res2Net',
    'DASMobileNetV2': 'MobileNetV2'
}


def plain_backbone_cfg(backbone: dict) -> dict:
    """The same backbone config without gates (the like-for-like baseline)."""
    if backbone.get('type') == 'GatedBackbone':
        plain = {k: v for k, v in backbone.items() if k not in GATED_BACKBONE_ARGS}
        return dict(plain, type=backbone['host'])
    if backbone.get('type') not in PLAIN_TYPES:
        raise ValueError(f"backbone type must be 'GatedBackbone' or one of {tuple(PLAIN_TYPES)}, "
                         f"got {backbone.get('type')!r}")
    plain = {k: v for k, v in backbone.items() if k not in GATE_ARGS}
    plain['type'] = PLAIN_TYPES[backbone['type']]
    return plain
