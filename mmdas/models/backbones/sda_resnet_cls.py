"""mmpretrain's SDA-ResNet (see :mod:`.sda_resnet`)."""
from mmpretrain.models.backbones import ResNet
from mmpretrain.registry import MODELS

from .sda_resnet import SDAResNetMixin


@MODELS.register_module(name='SDAResNet')
class SDAResNetCls(SDAResNetMixin, ResNet):
    """mmpretrain ``ResNet`` with SDA-xNet's stage-wise depth attention."""
