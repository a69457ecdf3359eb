"""SDA-xNet's stage-wise depth attention.

Guo et al., "SDA-xNet: Selective Depth Attention Networks for Adaptive Multi-scale Feature
Representation" (official code: QingbeiGuo/SDA-xNet, ``BasicStage``). For the outputs
``o_1 ... o_k`` of a stage's ``k`` blocks::

    v   = ReLU(BN(W1 GAP(o_1 + ... + o_k)))     # W1: 1x1 conv c -> d, no bias, d = max(c/16, 64)
    a_i = softmax over i of (W2_i v)            # W2_i: 1x1 conv d -> c with bias, one per block
    y   = sum_i a_i * o_i                       # a weight per block and channel

It re-weights a stage's blocks across depth (which block's features a channel takes), where
DAS gates space and channels after the stage.
"""
from typing import Sequence

import torch
import torch.nn as nn
from torch import Tensor


def sda_hidden_channels(channels: int, reduction: int = 16, floor: int = 64) -> int:
    """The squeeze width ``d = max(channels // reduction, floor)`` of the official code."""
    return max(channels // reduction, floor)


class StageDepthAttention(nn.Module):
    """Fuses a stage's ``num_blocks`` block outputs of ``channels`` channels (see the module)."""

    def __init__(self, channels: int, num_blocks: int) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f'num_blocks must be a positive int, got {num_blocks!r}')
        hidden = sda_hidden_channels(channels)
        self.squeeze = nn.Conv2d(channels, hidden, 1, bias=False)
        self.norm = nn.BatchNorm2d(hidden)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.ModuleList(nn.Conv2d(hidden, channels, 1) for _ in range(num_blocks))

    def block_weights(self, outs: Sequence[Tensor]) -> Tensor:
        """``(k, N, C, 1, 1)``: each block's weight per sample and channel, summing to 1."""
        pooled = torch.stack(list(outs)).sum(0).mean((2, 3), keepdim=True)
        if self.training and pooled.shape[0] == 1 and type(self.norm) is nn.BatchNorm2d:
            raise ValueError(
                'SDA-xNet\'s depth attention normalizes the pooled vector of each image with '
                'BatchNorm (as the official code does), which cannot train on one image per '
                'process: train with two or more images per GPU, or on several GPUs with '
                "SyncBN (sync_bn='torch' in the config converts every BatchNorm)")
        v = self.act(self.norm(self.squeeze(pooled)))
        return torch.stack([conv(v) for conv in self.expand]).softmax(0)

    def forward(self, outs: Sequence[Tensor]) -> Tensor:
        if len(outs) != len(self.expand):
            raise ValueError(f'expected the outputs of {len(self.expand)} blocks, got {len(outs)}')
        return (self.block_weights(outs) * torch.stack(list(outs))).sum(0)
