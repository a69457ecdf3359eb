"""Triplet Attention: Misra et al., "Rotate to Attend: Convolutional Triplet Attention
Module", WACV 2021."""
import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor


class _ZPoolGate(nn.Module):
    """Z-pool (max and mean over dim 1), a conv with batch norm, sigmoid: ``x * weight``."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False), nn.BatchNorm2d(1))

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat((x.amax(1, keepdim=True), x.mean(1, keepdim=True)), 1)
        return x * self.conv(pooled).sigmoid()


@MODELS.register_module()
class TripletAttentionGate(nn.Module):
    """Three branches, each rotating the map so that a different pair of (C, H, W) interacts
    (C-W with H pooled, C-H with W pooled, H-W with C pooled), each a Z-pool, a 7x7 conv with
    batch norm and a sigmoid; the three gated maps are averaged. About 300 parameters per
    module (the paper's default kernel 7); placed in every Bottleneck after conv3.
    """

    _abbr_ = 'triplet_attention_gate'

    def __init__(self, in_channels: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.channel_width = _ZPoolGate(kernel_size)
        self.channel_height = _ZPoolGate(kernel_size)
        self.height_width = _ZPoolGate(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        # (N, C, H, W) -> (N, H, C, W): pool over H, attend over (C, W); and back.
        cw = self.channel_width(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
        # (N, C, H, W) -> (N, W, H, C): pool over W, attend over (H, C); and back.
        ch = self.channel_height(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
        return (cw + ch + self.height_width(x)) / 3
