"""Gates: shape-preserving attention modules with an ``in_channels`` argument, registered in
mmengine's root ``MODELS`` (so mmcv's plugin mechanism, every backbone's ``gate=dict(...)``
and every framework's configs build them by name). DAS and the modules it is compared with;
GCNet's block is mmcv's ``ContextBlock`` and NonLocal mmcv's ``NonLocal2d``, used as they are."""
from .cat_gate import CATGate
from .cbam_gate import CBAMGate
from .danet_gate import DANetGate
from .das_gate import DASGate, das_hidden_channels
from .eca_gate import ECAGate, eca_kernel_size
from .se_gate import SEGate
from .triplet_attention_gate import TripletAttentionGate

__all__ = [
    'DASGate', 'das_hidden_channels', 'SEGate', 'CBAMGate', 'ECAGate', 'eca_kernel_size',
    'TripletAttentionGate', 'CATGate', 'DANetGate'
]
