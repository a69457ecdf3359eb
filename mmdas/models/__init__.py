from .backbone_warmup import BackboneWarmup
from .backbones import DASMobileNetV2, DASRes2Net, DASResNet, DASResNetV1d, DASResNeXt
from .plugins import DASGate

__all__ = [
    'BackboneWarmup', 'DASGate', 'DASResNet', 'DASResNetV1d', 'DASResNeXt', 'DASRes2Net',
    'DASMobileNetV2'
]
