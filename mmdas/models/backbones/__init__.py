from .das_backbone import plain_backbone_cfg
from .das_mobilenet_v2 import DASMobileNetV2
from .das_resnet import DASResNet

__all__ = ['DASResNet', 'DASMobileNetV2', 'plain_backbone_cfg']
