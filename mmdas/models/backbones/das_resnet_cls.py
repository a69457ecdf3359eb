"""mmpretrain's flavours of the gated ResNet family (see :mod:`.das_resnet`)."""
from mmpretrain.models.backbones import Res2Net, ResNet, ResNet_CIFAR, ResNetV1c, ResNetV1d, ResNeXt
from mmpretrain.registry import MODELS

from .das_resnet import DASResNetMixin


class DASResNetClsMixin(DASResNetMixin):
    """mmpretrain's layer-wise lr decay: a gate counts as the last block of its stage."""

    def get_layer_depth(self, param_name: str, prefix: str = ''):
        names = param_name.split('.')
        if self.gate_name in names:
            i = names.index(self.gate_name)  # e.g. backbone.layer2.das_gate.weight
            names[i] = str(len(getattr(self, names[i - 1])) - 2)  # its stage's last block
            param_name = '.'.join(names)
        return super().get_layer_depth(param_name, prefix)


@MODELS.register_module(name='DASResNet')
class DASResNetCls(DASResNetClsMixin, ResNet):
    """mmpretrain ``ResNet`` with stage gates (arguments: :class:`.DASResNetMixin`)."""


@MODELS.register_module(name='DASResNet_CIFAR')
class DASResNetCIFAR(DASResNetClsMixin, ResNet_CIFAR):
    """mmpretrain ``ResNet_CIFAR`` (3x3 stem, no max-pool) with stage gates."""


@MODELS.register_module(name='DASResNetV1c')
class DASResNetV1cCls(DASResNetClsMixin, ResNetV1c):
    """mmpretrain ``ResNetV1c`` (deep stem) with stage gates."""


@MODELS.register_module(name='DASResNetV1d')
class DASResNetV1dCls(DASResNetClsMixin, ResNetV1d):
    """mmpretrain ``ResNetV1d`` (deep stem, average-pool shortcut) with stage gates."""


@MODELS.register_module(name='DASResNeXt')
class DASResNeXtCls(DASResNetClsMixin, ResNeXt):
    """mmpretrain ``ResNeXt`` (``groups``, ``width_per_group``) with stage gates."""


@MODELS.register_module(name='DASRes2Net')
class DASRes2NetCls(DASResNetClsMixin, Res2Net):
    """mmpretrain ``Res2Net`` (``scales``, ``base_width``) with stage gates."""
