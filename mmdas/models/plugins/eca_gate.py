"""ECA: Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020."""
import math

import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """The paper's adaptive kernel: ``|log2(c) / gamma + b / gamma|`` taken to the odd integer
    (``t = int(...)``, ``t + 1`` when ``t`` is even)."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


@MODELS.register_module()
class ECAGate(nn.Module):
    """Global average pool, a 1D conv across channels (kernel size adapted to ``c``, no bias,
    no dimensionality reduction), sigmoid: one weight per channel for ``k`` parameters. Paper
    defaults: gamma 2, b 1; ECA-Net50 places one module in every Bottleneck after conv3,
    about 80 parameters over ResNet-50.
    """

    _abbr_ = 'eca_gate'

    def __init__(self,
                 in_channels: int,
                 kernel_size: int = None,
                 gamma: float = 2,
                 b: float = 1) -> None:
        super().__init__()
        k = kernel_size or eca_kernel_size(in_channels, gamma, b)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        weights = self.conv(self.pool(x).view(n, 1, c)).view(n, c, 1, 1)
        return x * weights.sigmoid()
