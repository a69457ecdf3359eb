"""CAT: Wu et al., "CAT: Learning to Collaborate Channel and Spatial Attention from
Multi-Information Fusion", IET Computer Vision 2023 (arXiv 2212.06335).

The authors' code was announced and never released, and only the abstract's description is
available here; this module follows it, and the points below are our reading of it:

* three-way pooling: global average (GAP), global max (GMP) and global entropy pooling (GEP);
  GEP of a set of values is the entropy of their softmax, ``-sum(p log p)``, divided by
  ``log(n)`` so that it lies in [0, 1] whatever the map size (0 for a single value);
* channel attention: a shared MLP (``c -> c / reduction -> c``) on each of the three pooled
  vectors (pooled over H, W), the three results combined with trainable pooling colla-factors;
* spatial attention: a shared ``kernel_size`` conv on each of the three channel-pooled maps,
  combined the same way with their own colla-factors;
* collaboration: ``Y = X * (a * channel + b * spatial)`` with trainable colla-factors ``a``,
  ``b`` (starting at 0.5 each; the pooling factors at 1, CBAM's plain sum).
"""
import math

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from .se_gate import channel_mlp


def entropy_pool(x: Tensor, dims) -> Tensor:
    """Normalised entropy of ``softmax(x)`` over ``dims`` (kept as size-1 dims): 0 when one
    value dominates, 1 when all are equal."""
    count = math.prod(x.shape[d] for d in dims)
    if count == 1:
        return x.new_zeros([1 if d in dims else s for d, s in enumerate(x.shape)])
    log_p = x - torch.logsumexp(x, dim=dims, keepdim=True)
    return -(log_p.exp() * log_p).sum(dim=dims, keepdim=True) / math.log(count)


@MODELS.register_module()
class CATGate(nn.Module):
    """Channel and spatial attention from GAP, GMP and GEP, fused by trainable colla-factors
    (see the module notes for what the paper's text leaves open). Defaults: reduction 16,
    7x7 kernel (CBAM's, which CAT extends)."""

    _abbr_ = 'cat_gate'

    def __init__(self, in_channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.mlp = channel_mlp(in_channels, reduction)
        self.spatial = nn.Conv2d(1, 1, kernel_size, padding=kernel_size // 2)
        self.channel_pool_factors = nn.Parameter(torch.ones(3))
        self.spatial_pool_factors = nn.Parameter(torch.ones(3))
        self.colla_factors = nn.Parameter(torch.full((2, ), 0.5))

    @staticmethod
    def three_way_pool(x: Tensor, dims) -> tuple:
        return x.mean(dims, keepdim=True), x.amax(dims, keepdim=True), entropy_pool(x, dims)

    def forward(self, x: Tensor) -> Tensor:
        channel = sum(f * self.mlp(p)
                      for f, p in zip(self.channel_pool_factors, self.three_way_pool(x, (2, 3))))
        spatial = sum(f * self.spatial(p)
                      for f, p in zip(self.spatial_pool_factors, self.three_way_pool(x, (1, ))))
        a, b = self.colla_factors
        return x * (a * channel.sigmoid() + b * spatial.sigmoid())
