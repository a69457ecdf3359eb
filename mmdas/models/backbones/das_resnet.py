"""DAS-ResNet and its family: a gate after the last block of each chosen stage.

Salajegheh et al., "DAS: A Deformable Attention to Capture Salient Information in CNNs", 2023:
four gates, one per stage (outputs at strides 4, 8, 16, 32), alpha = 0.2.

One mixin, :class:`DASResNetMixin`, extends each framework's own ``ResNet``, ``ResNetV1c``,
``ResNetV1d``, ``ResNeXt`` and ``Res2Net``. The flavours are registered in each framework's
registry under the same names (``DASResNet``, ``DASResNeXt``...), so a config keeps the defaults
of its scope: mmdet's (``out_indices=(0, 1, 2, 3)``, ``dcn``, ``plugins``...), mmpretrain's
(``out_indices=(3,)``, ``drop_path_rate``...) or mmsegmentation's (``dilations``,
``contract_dilation``...). Their state dicts are the host's plus ``layer<i>.das_gate.*``.
This module holds the mixin and mmdet's flavours; ``das_resnet_cls`` and ``das_resnet_seg``
hold mmpretrain's and mmsegmentation's.
"""
from typing import Optional, Sequence

import torch.nn as nn
from mmdet.models.backbones import Res2Net as MMDetRes2Net
from mmdet.models.backbones import ResNet as MMDetResNet
from mmdet.models.backbones import ResNetV1d as MMDetResNetV1d
from mmdet.models.backbones import ResNeXt as MMDetResNeXt
from mmdet.registry import MODELS as MMDET_MODELS

from .das_backbone import StageGatesMixin, check_stage_flags, gate_config


def resnet_stage_channels(backbone: nn.Module, stage: str) -> int:
    """Output channels of a ResNet-family stage; mmdet's and mmseg's blocks do not store them."""
    last_block = getattr(backbone, stage)[-1]
    if hasattr(last_block, 'out_channels'):  # mmpretrain's blocks
        return last_block.out_channels
    return backbone.base_channels * 2**backbone.res_layers.index(stage) * backbone.block.expansion


class DepthError(KeyError, ValueError):
    """A depth the host has no layout for: the host's own ``KeyError`` (its
    ``arch_settings[depth]``), and a ``ValueError`` like every other bad argument here."""

    __str__ = ValueError.__str__  # the message, not KeyError's repr of it


class DASResNetMixin(StageGatesMixin):
    """Shared constructor of the gated ResNet-family backbones.

    Args:
        depth: one of the host's depths (ResNet: 18, 34, 50, 101, 152; ResNeXt and Res2Net:
            50, 101, 152).
        gate_stages: one bool per stage, True = a gate after the stage's last block; default
            every stage (``num_stages`` of them). All False gives exactly the host backbone,
            the like-for-like baseline.
        gate: the gate's config; default ``dict(type='DASGate', alpha=alpha,
            deform_impl=deform_impl)``. Any gate registered in mmengine's ``MODELS`` with an
            ``in_channels`` argument fits, e.g. ``dict(type='CBAMGate')``.
        alpha: the DAS gate's compression ratio in (0, 1] (default 0.2).
        deform_impl: the DAS gate's deformable conv: ``'auto'``, ``'mmcv'`` or ``'torch'``.
        freeze_gates: freeze the gates of ``frozen_stages`` too (default: they keep training).
        **kwargs: everything the host backbone takes.
    """

    def __init__(self,
                 depth: int,
                 gate_stages: Optional[Sequence[bool]] = None,
                 gate: Optional[dict] = None,
                 alpha: Optional[float] = None,
                 deform_impl: Optional[str] = None,
                 freeze_gates: bool = False,
                 **kwargs) -> None:
        depths = tuple(sorted(self.arch_settings))
        if depth not in depths:
            raise DepthError(f'depth must be one of {depths}, got {depth!r}')
        num_stages = kwargs.get('num_stages', 4)
        if gate_stages is None:
            gate_stages = (True, ) * num_stages if isinstance(num_stages, int) else ()
        check_stage_flags(gate_stages, num_stages)
        cfg = gate_config(gate, alpha, deform_impl)
        super().__init__(depth=depth, **kwargs)
        names = [name for name, gated in zip(self.res_layers, gate_stages) if gated]
        self._add_gates(names, [resnet_stage_channels(self, n) for n in names], cfg, freeze_gates)


class DASResNetMMDetMixin(DASResNetMixin):
    """mmdet's BasicBlock takes no plugins: point to the stage gates instead."""

    def __init__(self, depth: int, **kwargs) -> None:
        if depth in (18, 34) and kwargs.get('plugins'):
            raise ValueError(
                f"plugins: mmdet's BasicBlock (ResNet-{depth}) accepts no plugins. DASResNet "
                'already puts a gate after each stage (gate_stages=...); for gates inside '
                'blocks use a Bottleneck ResNet (depth 50, 101, 152).')
        super().__init__(depth, **kwargs)


@MMDET_MODELS.register_module(name='DASResNet')
class DASResNet(DASResNetMMDetMixin, MMDetResNet):
    """mmdet ``ResNet`` with stage gates (arguments: :class:`DASResNetMixin`)."""


@MMDET_MODELS.register_module(name='DASResNetV1d')
class DASResNetV1d(DASResNetMMDetMixin, MMDetResNetV1d):
    """mmdet ``ResNetV1d`` (deep stem, average-pool shortcut) with stage gates."""


@MMDET_MODELS.register_module(name='DASResNeXt')
class DASResNeXt(DASResNetMixin, MMDetResNeXt):
    """mmdet ``ResNeXt`` (``groups``, ``base_width``) with stage gates."""


@MMDET_MODELS.register_module(name='DASRes2Net')
class DASRes2Net(DASResNetMixin, MMDetRes2Net):
    """mmdet ``Res2Net`` (``scales``, ``base_width``) with stage gates."""
