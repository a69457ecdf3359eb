"""SE: Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018."""
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor


def channel_mlp(in_channels: int, reduction: int) -> nn.Sequential:
    """SE's excitation without its sigmoid, as 1x1 convs: ``c -> max(1, c / reduction) -> c``
    (CBAM and CAT apply the same MLP to each pooled vector)."""
    hidden = max(1, in_channels // reduction)
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, in_channels, 1))


@MODELS.register_module()
class SEGate(nn.Module):
    """Squeeze (global average pool) and excitation (FC ``c -> c / reduction`` -> ReLU -> FC
    ``-> c`` -> sigmoid): one weight per channel. The paper's default reduction is 16; its
    SE-ResNet-50 puts one block in every Bottleneck, after conv3, before the residual sum
    (28.09 M parameters with the classifier).

    Args:
        in_channels: channels of the gated map.
        reduction: the bottleneck ratio of the two fully connected layers.
    """

    _abbr_ = 'se_gate'

    def __init__(self, in_channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.excite = nn.Sequential(*channel_mlp(in_channels, reduction), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.excite(self.squeeze(x))
