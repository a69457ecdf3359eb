"""DAS attention gate.

Salajegheh et al., "DAS: A Deformable Attention to Capture Salient Information in CNNs", 2023::

    Xc = GELU(InstanceNorm(DSC(X)))       # depthwise 3x3 (c -> c), pointwise 1x1 (c -> hidden)
    A  = Sigmoid(LayerNorm(DCN(Xc)))      # modulated 3x3 deformable conv hidden -> c
    Y  = X * A

``hidden = max(1, round(alpha * c))``. InstanceNorm is a ``GroupNorm`` with one group per channel
and LayerNorm (each sample over (C, H, W), per-channel affine) one with a single group, both
:class:`~mmdas.models.layers.GroupNormAnySize`, which is defined on every map size (a 32 px
input reaches a 1x1 map at stride 32, where ``nn.GroupNorm`` and ``nn.InstanceNorm2d`` raise
for a batch of one).
"""
import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from mmdas.ops import DispatchingDeformConv2dPack
from ..layers import GroupNormAnySize


def das_hidden_channels(in_channels: int, alpha: float) -> int:
    """Width of the compressed map: ``max(1, round(alpha * in_channels))``."""
    return max(1, round(alpha * in_channels))


@MODELS.register_module()
class DASGate(nn.Module):
    """DAS gate: ``Y = X * sigmoid(LN(DCN(GELU(IN(DSC(X))))))``; ``Y`` has ``X``'s shape.

    Registered in mmengine's root ``MODELS``, so ``build_plugin_layer``, mmdet and mmpretrain
    configs can all build it by name after ``import mmdas``.

    Args:
        in_channels: channels ``c`` of the gated feature map.
        alpha: compression ratio of the pointwise conv, in (0, 1]; the paper uses 0.2.
        deform_impl: deformable-conv implementation, ``'auto'``, ``'mmcv'`` or ``'torch'``
            (see :mod:`mmdas.ops`).
    """

    _abbr_ = 'das_gate'

    def __init__(self, in_channels: int, alpha: float = 0.2, deform_impl: str = 'auto') -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'in_channels must be a positive int, got {in_channels!r}')
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
            raise ValueError(f'alpha must be a number in (0, 1], got {alpha!r}')
        self.in_channels = in_channels
        self.alpha = float(alpha)
        hidden = das_hidden_channels(in_channels, alpha)
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, hidden, 1)
        self.compress_norm = GroupNormAnySize(hidden, hidden)  # InstanceNorm with affine
        self.act = nn.GELU()
        self.deform_conv = DispatchingDeformConv2dPack(
            hidden, in_channels, 3, padding=1, impl=deform_impl)
        self.gate_norm = GroupNormAnySize(1, in_channels)  # LayerNorm over (C, H, W)
        self.init_weights()

    def init_weights(self) -> None:
        """PyTorch's default init for the convs and norms, zero offsets and mask logits.

        Hosts such as mmdet's ResNet apply Kaiming init to every ``Conv2d`` first and then call
        their children's ``init_weights``; this resets the gate, so offsets start at zero.
        """
        for module in (self.depthwise, self.pointwise, self.compress_norm, self.gate_norm):
            module.reset_parameters()
        self.deform_conv.init_weights()

    def attention(self, x: Tensor) -> Tensor:
        """The gate ``A`` in (0, 1), same shape as ``x`` (channels-last in memory)."""
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != self.in_channels):
            raise ValueError(f'DASGate(in_channels={self.in_channels}) expects an (N, '
                             f'{self.in_channels}, H, W) tensor, got shape {tuple(x.shape)}')
        xc = self.act(self.compress_norm(self.pointwise(self.depthwise(x))))
        # The compressed branch runs channels-last, the layout of the pure-PyTorch deformable
        # conv's product: its output then needs no transposing copy (xc has alpha * c channels).
        xc = xc.contiguous(memory_format=torch.channels_last)
        # In place: GroupNorm's backward does not need its output, sigmoid's keeps its own.
        return self.gate_norm(self.deform_conv(xc)).sigmoid_()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention(x)  # in x's memory format

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, alpha={self.alpha}'
