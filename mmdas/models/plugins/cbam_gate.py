"""CBAM: Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018."""
import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from .se_gate import channel_mlp


@MODELS.register_module()
class CBAMGate(nn.Module):
    """Channel attention, then spatial attention, applied in sequence.

    Channel: a shared MLP (``c -> c / reduction -> c``) on the average- and the max-pooled
    vectors, summed, sigmoid. Spatial: a ``kernel_size`` conv (with batch norm, as the authors'
    code) on the channel-wise average and max maps, sigmoid. Paper defaults: reduction 16,
    7x7 kernel; CBAM-ResNet-50 places one module in every Bottleneck after conv3 (28.09 M
    parameters with the classifier).
    """

    _abbr_ = 'cbam_gate'

    def __init__(self, in_channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.mlp = channel_mlp(in_channels, reduction)
        self.spatial = nn.Sequential(
            nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False), nn.BatchNorm2d(1))

    def forward(self, x: Tensor) -> Tensor:
        channel = self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True))
        x = x * channel.sigmoid()
        pooled = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), 1)
        return x * self.spatial(pooled).sigmoid()
