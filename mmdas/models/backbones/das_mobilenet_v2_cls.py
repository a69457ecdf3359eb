"""mmpretrain's flavour of DAS-MobileNetV2 (see :mod:`.das_mobilenet_v2`)."""
from mmpretrain.models.backbones import MobileNetV2
from mmpretrain.registry import MODELS

from .das_mobilenet_v2 import DASMobileNetV2Mixin


@MODELS.register_module(name='DASMobileNetV2')
class DASMobileNetV2Cls(DASMobileNetV2Mixin, MobileNetV2):
    """mmpretrain MobileNetV2 with gates (same arguments as :class:`.DASMobileNetV2`)."""
