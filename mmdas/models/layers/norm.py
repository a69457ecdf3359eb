"""Group normalisation that is defined on every map size."""
import torch
import torch.nn as nn
from torch import Tensor


class GroupNormAnySize(nn.GroupNorm):
    """``nn.GroupNorm`` that also normalises a group holding a single value.

    ``torch.nn.functional.group_norm`` refuses a group of one value ("Expected more than 1
    value per channel", in training and in eval): ``GroupNorm(c, c)`` (instance norm) on a 1x1
    map with batch 1, as a 32 px input reaches at stride 32. The normalisation is well defined
    there: the value minus its mean is 0, so the output is the affine bias. This calls the same
    kernel without that check; parameters, state-dict keys and results elsewhere are
    ``nn.GroupNorm``'s.
    """

    def forward(self, x: Tensor) -> Tensor:
        return torch.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
