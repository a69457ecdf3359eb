"""SDA-ResNet: the ResNet layouts (18-152, any ``base_channels``) with SDA-xNet's stage-wise
depth attention (:class:`~mmdas.models.layers.StageDepthAttention`) fusing each stage's blocks.

Where it differs from the official model (QingbeiGuo/SDA-xNet): their "SDA-ResNet-50" is an
86-layer layout with grouped 3x3 convs, so its parameter counts are not these; this one keeps
the host ResNet's blocks exactly, so an ordinary ResNet checkpoint loads with only the
attention new. Their blocks hand the fusion their pre-activation outputs ``F(x) + x`` and the
stage output is ``ReLU(sum_i a_i o_i)``; the host blocks here end in their ReLU, so the fusion
takes the post-activation outputs and ``sum_i a_i ReLU(o_i)`` needs no ReLU after it. The two
agree when one block takes all the weight; with mixed weights ours is the weighted mean of the
activations rather than the activation of the weighted mean.
"""
from typing import List

import torch.nn as nn
from mmdet.models.backbones import ResNet as MMDetResNet
from mmdet.registry import MODELS as MMDET_MODELS
from torch import Tensor

from ..layers import StageDepthAttention
from .das_backbone import HostStage
from .das_resnet import resnet_stage_channels
from .pretrained import init_then_load_checked


class SDAStage(HostStage):
    """A host stage whose blocks' outputs are fused by depth attention (``depth_attention``),
    instead of the last block's output alone; the blocks and their keys stay the host's."""

    def __init__(self, blocks: nn.Sequential, channels: int) -> None:
        super().__init__(blocks, dict(depth_attention=StageDepthAttention(channels, len(blocks))))

    def forward(self, x: Tensor) -> Tensor:
        *blocks, attention = self
        outs = []
        for block in blocks:
            x = block(x)
            outs.append(x)
        return attention(outs)


class SDAResNetMixin:
    """Every stage of the host ResNet becomes an :class:`SDAStage`; arguments are the host's.

    The attention is a new layer: it keeps training (its BatchNorm included) under the host's
    ``norm_eval`` and ``frozen_stages``, and ``init_cfg=dict(type='Pretrained', ...)`` loads an
    ordinary ResNet checkpoint checked, only ``depth_attention`` tensors missing. Its BatchNorm
    sees one value per channel and sample (a pooled map), so training needs at least 2 samples
    per process, as SE-style modules with BatchNorm do.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in self.res_layers:
            setattr(self, name, SDAStage(getattr(self, name), resnet_stage_channels(self, name)))
        self._freeze_stages()

    def depth_attentions(self) -> List[nn.Module]:
        """The stages' depth attentions (none while the host is still being built)."""
        stages = [getattr(self, name) for name in self.res_layers]
        return [stage.depth_attention for stage in stages if isinstance(stage, SDAStage)]

    def _freeze_stages(self) -> None:
        super()._freeze_stages()
        for attention in self.depth_attentions():
            attention.requires_grad_(True)

    def train(self, mode: bool = True):
        super().train(mode)
        for attention in self.depth_attentions():
            attention.train(mode)
        return self

    def init_weights(self) -> None:
        """Host init, then PyTorch's default init for the attention (as the official code),
        then (if asked) checked pretrained loading."""
        init_then_load_checked(self,
                               super().init_weights, self._init_attentions,
                               lambda key: '.depth_attention.' in f'.{key}')

    def _init_attentions(self) -> None:
        for attention in self.depth_attentions():
            for module in attention.modules():
                if hasattr(module, 'reset_parameters') and module is not attention:
                    module.reset_parameters()


@MMDET_MODELS.register_module(name='SDAResNet')
class SDAResNet(SDAResNetMixin, MMDetResNet):
    """mmdet ``ResNet`` with SDA-xNet's stage-wise depth attention (see the module)."""
