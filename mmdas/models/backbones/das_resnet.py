"""DAS-ResNet: a ResNet with a DAS gate after the last block of each chosen stage.

Salajegheh et al., "DAS: A Deformable Attention to Capture Salient Information in CNNs", 2023:
four gates, one per stage (outputs at strides 4, 8, 16, 32), alpha = 0.2.

Two flavours, each extending its framework's own ``ResNet`` and registered there under the
same name, so ``type='DASResNet'`` keeps the defaults of the config's scope: mmdet's
(``out_indices=(0, 1, 2, 3)``, ``style``, ``dcn``, ``plugins``, ...) or mmpretrain's
(``out_indices=(3,)``, ``drop_path_rate``, ...). Their state dicts use the same keys, which are
those of torchvision's ResNet plus ``layer<i>.das_gate.*``.
"""
from typing import Sequence

from mmdet.models.backbones import ResNet as MMDetResNet
from mmdet.registry import MODELS as MMDET_MODELS

from .das_backbone import DASGatesMixin, check_stage_flags

DEPTHS = (18, 34, 50, 101, 152)


def _check_depth(depth) -> None:
    if depth not in DEPTHS:
        raise ValueError(f'depth must be one of {DEPTHS}, got {depth!r}')


@MMDET_MODELS.register_module(name='DASResNet')
class DASResNet(DASGatesMixin, MMDetResNet):
    """mmdet ResNet with DAS gates.

    Args:
        depth: 18, 34, 50, 101 or 152.
        gate_stages: one bool per stage, True = a DAS gate after the stage's last block.
        alpha: gate compression ratio in (0, 1].
        deform_impl: ``'auto'``, ``'mmcv'`` or ``'torch'`` (see :mod:`mmdas.ops`).
        freeze_gates: freeze the gates of ``frozen_stages`` too (default: they keep training).
        **kwargs: everything mmdet's ``ResNet`` takes.
    """

    def __init__(self, depth: int, gate_stages: Sequence[bool] = (True, True, True, True),
                 alpha: float = 0.2, deform_impl: str = 'auto', freeze_gates: bool = False,
                 **kwargs) -> None:
        _check_depth(depth)
        check_stage_flags(gate_stages, kwargs.get('num_stages', 4))
        if depth in (18, 34) and kwargs.get('plugins'):
            raise ValueError(
                f"plugins: mmdet's BasicBlock (ResNet-{depth}) accepts no plugins. DASResNet "
                'already puts a DAS gate after each stage (gate_stages=...); for gates inside '
                'blocks use a Bottleneck ResNet (depth 50, 101, 152).')
        super().__init__(depth, **kwargs)
        stages = [(name, self.base_channels * 2**i * self.block.expansion)
                  for i, name in enumerate(self.res_layers) if gate_stages[i]]
        self._add_das_gates([n for n, _ in stages], [c for _, c in stages], alpha, deform_impl,
                            freeze_gates)


try:
    from mmpretrain.models.backbones import ResNet as MMPretrainResNet
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
except ImportError:  # mmpretrain is optional for detection users
    MMPretrainResNet = None

if MMPretrainResNet is not None:

    @MMPRETRAIN_MODELS.register_module(name='DASResNet')
    class DASResNetCls(DASGatesMixin, MMPretrainResNet):
        """mmpretrain ResNet with DAS gates; same arguments as :class:`DASResNet`."""

        def __init__(self, depth: int, gate_stages: Sequence[bool] = (True, True, True, True),
                     alpha: float = 0.2, deform_impl: str = 'auto', freeze_gates: bool = False,
                     **kwargs) -> None:
            _check_depth(depth)
            check_stage_flags(gate_stages, kwargs.get('num_stages', 4))
            super().__init__(depth, **kwargs)
            stages = [(name, getattr(self, name)[-1].out_channels)
                      for i, name in enumerate(self.res_layers) if gate_stages[i]]
            self._add_das_gates([n for n, _ in stages], [c for _, c in stages], alpha,
                                deform_impl, freeze_gates)

        def get_layer_depth(self, param_name: str, prefix: str = ''):
            """Layer-wise lr decay: a gate counts as the last block of its stage."""
            names = param_name.split('.')
            if 'das_gate' in names:
                i = names.index('das_gate')  # e.g. backbone.layer2.das_gate.weight
                names[i] = str(len(getattr(self, names[i - 1])) - 2)  # its stage's last block
                param_name = '.'.join(names)
            return super().get_layer_depth(param_name, prefix)
