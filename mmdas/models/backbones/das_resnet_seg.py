"""mmsegmentation's flavours of the gated ResNet family (see :mod:`.das_resnet`).

Registered in mmseg's own registry, so ``type='DASResNetV1c'`` in an mmseg config keeps mmseg's
ResNet arguments (``dilations``, ``strides``, ``contract_dilation``, ``multi_grid``) that its
decode heads rely on: the D8 recipes dilate stages 3 and 4 instead of striding them, and a
gate after such a stage works at stride 8 like the rest of it.
"""
from mmseg.models.backbones import ResNet, ResNetV1c, ResNetV1d, ResNeXt
from mmseg.registry import MODELS

from .das_resnet import DASResNetMixin


@MODELS.register_module(name='DASResNet')
class DASResNetSeg(DASResNetMixin, ResNet):
    """mmseg ``ResNet`` with stage gates (arguments: :class:`.DASResNetMixin`)."""


@MODELS.register_module(name='DASResNetV1c')
class DASResNetV1cSeg(DASResNetMixin, ResNetV1c):
    """mmseg ``ResNetV1c`` (deep stem; the backbone of its ``r50-d8`` recipes) with stage gates."""


@MODELS.register_module(name='DASResNetV1d')
class DASResNetV1dSeg(DASResNetMixin, ResNetV1d):
    """mmseg ``ResNetV1d`` (deep stem, average-pool shortcut) with stage gates."""


@MODELS.register_module(name='DASResNeXt')
class DASResNeXtSeg(DASResNetMixin, ResNeXt):
    """mmseg ``ResNeXt`` with stage gates."""
