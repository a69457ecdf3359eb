"""DAS-ResNet: a ResNet with a DAS gate after the last block of each chosen stage.

Salajegheh et al., "DAS: A Deformable Attention to Capture Salient Information in CNNs", 2023:
four gates, one per stage (outputs at strides 4, 8, 16, 32), alpha = 0.2.

Flavours extend each framework's own ResNet and are registered there under the same name, so
``type='DASResNet'`` keeps the defaults of the config's scope: mmdet's
(``out_indices=(0, 1, 2, 3)``, ``style``, ``dcn``, ``plugins``, ...) or mmpretrain's
(``out_indices=(3,)``, ``drop_path_rate``, ...); ``DASResNet_CIFAR`` extends mmpretrain's
``ResNet_CIFAR``. Their state dicts use the same keys: torchvision's plus
``layer<i>.das_gate.*``.
"""
from typing import Sequence

from mmdet.models.backbones import ResNet as MMDetResNet
from mmdet.registry import MODELS as MMDET_MODELS

from .das_backbone import DASGatesMixin, check_stage_flags

DEPTHS = (18, 34, 50, 101, 152)


class DASResNetMixin(DASGatesMixin):
    """Shared constructor of the DAS-ResNet flavours.

    Args:
        depth: 18, 34, 50, 101 or 152.
        gate_stages: one bool per stage, True = a DAS gate after the stage's last block
            (all False gives exactly the plain ResNet: the like-for-like baseline).
        alpha: gate compression ratio in (0, 1].
        deform_impl: ``'auto'``, ``'mmcv'`` or ``'torch'`` (see :mod:`mmdas.ops`).
        freeze_gates: freeze the gates of ``frozen_stages`` too (default: they keep training).
        **kwargs: everything the framework's ``ResNet`` takes.
    """

    def __init__(self, depth: int, gate_stages: Sequence[bool] = (True, True, True, True),
                 alpha: float = 0.2, deform_impl: str = 'auto', freeze_gates: bool = False,
                 **kwargs) -> None:
        if depth not in DEPTHS:
            raise ValueError(f'depth must be one of {DEPTHS}, got {depth!r}')
        check_stage_flags(gate_stages, kwargs.get('num_stages', 4))
        super().__init__(depth, **kwargs)
        names = [name for name, gated in zip(self.res_layers, gate_stages) if gated]
        self._add_das_gates(names, [self._stage_channels(n) for n in names], alpha,
                            deform_impl, freeze_gates)

    def _stage_channels(self, stage: str) -> int:
        return getattr(self, stage)[-1].out_channels


@MMDET_MODELS.register_module(name='DASResNet')
class DASResNet(DASResNetMixin, MMDetResNet):
    """mmdet ResNet with DAS gates (see :class:`DASResNetMixin` for the arguments)."""

    def __init__(self, depth: int, **kwargs) -> None:
        if depth in (18, 34) and kwargs.get('plugins'):
            raise ValueError(
                f"plugins: mmdet's BasicBlock (ResNet-{depth}) accepts no plugins. DASResNet "
                'already puts a DAS gate after each stage (gate_stages=...); for gates inside '
                'blocks use a Bottleneck ResNet (depth 50, 101, 152).')
        super().__init__(depth, **kwargs)

    def _stage_channels(self, stage: str) -> int:
        return self.base_channels * 2**self.res_layers.index(stage) * self.block.expansion


try:
    from mmpretrain.models.backbones import ResNet as MMPretrainResNet
    from mmpretrain.models.backbones import ResNet_CIFAR as MMPretrainResNetCIFAR
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
except ImportError:  # mmpretrain is optional for detection users
    MMPretrainResNet = None

if MMPretrainResNet is not None:

    class DASResNetClsMixin(DASResNetMixin):

        def get_layer_depth(self, param_name: str, prefix: str = ''):
            """Layer-wise lr decay: a gate counts as the last block of its stage."""
            names = param_name.split('.')
            if 'das_gate' in names:
                i = names.index('das_gate')  # e.g. backbone.layer2.das_gate.weight
                names[i] = str(len(getattr(self, names[i - 1])) - 2)  # its stage's last block
                param_name = '.'.join(names)
            return super().get_layer_depth(param_name, prefix)

    @MMPRETRAIN_MODELS.register_module(name='DASResNet')
    class DASResNetCls(DASResNetClsMixin, MMPretrainResNet):
        """mmpretrain ResNet with DAS gates (same arguments as :class:`DASResNet`)."""

    @MMPRETRAIN_MODELS.register_module(name='DASResNet_CIFAR')
    class DASResNetCIFAR(DASResNetClsMixin, MMPretrainResNetCIFAR):
        """mmpretrain ResNet_CIFAR (3x3 stem, no max-pool) with DAS gates."""
