"""Gated backbones, registered in every installed framework's registry under the same names."""
from .das_backbone import plain_backbone_cfg
from .das_mobilenet_v2 import DASMobileNetV2
from .das_resnet import DASRes2Net, DASResNet, DASResNetV1d, DASResNeXt

try:  # mmpretrain's flavours
    from . import das_mobilenet_v2_cls, das_resnet_cls  # noqa: F401
except ImportError as err:  # only mmpretrain itself may be missing
    if err.name is None or not err.name.startswith('mmpretrain'):
        raise
try:  # mmsegmentation's flavours
    from . import das_resnet_seg  # noqa: F401
except ImportError as err:
    if err.name is None or not err.name.startswith('mmseg'):
        raise

__all__ = [
    'DASResNet', 'DASResNetV1d', 'DASResNeXt', 'DASRes2Net', 'DASMobileNetV2', 'plain_backbone_cfg'
]
