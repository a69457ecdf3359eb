from .das_mobilenet_v2 import DASMobileNetV2
from .das_resnet import DASResNet

__all__ = ['DASResNet', 'DASMobileNetV2']
