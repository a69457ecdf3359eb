"""Gated backbones, registered in every installed framework's registry under the same names."""
import importlib
import warnings

from .das_backbone import StageGatesMixin, named_gates, plain_backbone_cfg
from .das_mobilenet_v2 import DASMobileNetV2
from .das_resnet import DASRes2Net, DASResNet, DASResNetV1d, DASResNeXt
from .gated_backbone import GatedHostMixin, gated_backbone_builder
from .sda_resnet import SDAResNet

# Flavours for the optional frameworks: registered where the framework imports; a framework
# that is not installed is skipped quietly, one that fails to import is named.
for _module, _framework in (('das_resnet_cls', 'mmpretrain'), ('das_mobilenet_v2_cls',
                                                               'mmpretrain'),
                            ('das_resnet_seg', 'mmseg'), ('sda_resnet_cls', 'mmpretrain')):
    try:
        importlib.import_module(f'{__name__}.{_module}')
    except ImportError as err:
        if err.name != _framework:
            warnings.warn(f'mmdas: no {_framework} flavours of the gated backbones, importing '
                          f'{_framework} failed: {err}')

# GatedBackbone: gates after the stages of any backbone of each framework's registry.
for _framework in ('mmdet', 'mmpretrain', 'mmseg'):
    try:
        _registry = importlib.import_module(f'{_framework}.registry').MODELS
    except ImportError as err:
        if err.name != _framework:
            warnings.warn(f'mmdas: no GatedBackbone in {_framework}, importing it failed: {err}')
        continue
    _registry.register_module(name='GatedBackbone', module=gated_backbone_builder(_registry))

__all__ = [
    'DASResNet', 'DASResNetV1d', 'DASResNeXt', 'DASRes2Net', 'DASMobileNetV2', 'SDAResNet',
    'StageGatesMixin', 'named_gates', 'plain_backbone_cfg', 'GatedHostMixin',
    'gated_backbone_builder'
]
