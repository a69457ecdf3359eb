from .backbones import DASMobileNetV2, DASResNet
from .plugins import DASGate

__all__ = ['DASGate', 'DASResNet', 'DASMobileNetV2']
