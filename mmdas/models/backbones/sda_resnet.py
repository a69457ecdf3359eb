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
from collections import OrderedDict
from typing import List

import torch.nn as nn
from mmdet.models.backbones import ResNet as MMDetResNet
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.model import Sequential
from torch import Tensor

from ..layers import StageDepthAttention
from .pretrained import is_pretrained_cfg, load_checked


class SDAStage(Sequential):
    """A host stage whose blocks' outputs are fused by depth attention (``depth_attention``),
    instead of the last block's output alone; the blocks and their keys stay the host's."""

    def __init__(self, blocks: nn.Sequential, channels: int) -> None:
        children = list(blocks.named_children())
        super().__init__(
            OrderedDict(children +
                        [('depth_attention', StageDepthAttention(channels, len(children)))]))
        self._host_inits_blocks = hasattr(blocks, 'init_weights')

    def init_weights(self) -> None:
        if self._host_inits_blocks:
            super().init_weights()

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
            stage = getattr(self, name)
            setattr(self, name, SDAStage(stage, self._stage_out_channels(stage)))
        self._freeze_stages()

    @staticmethod
    def _stage_out_channels(stage: nn.Sequential) -> int:
        last = stage[-1]
        if hasattr(last, 'out_channels'):  # mmpretrain's blocks
            return last.out_channels
        norm = getattr(last, 'norm3', None) or last.norm2  # mmdet's Bottleneck / BasicBlock
        return norm.num_features

    def depth_attentions(self) -> List[nn.Module]:
        return [getattr(self, name).depth_attention for name in self.res_layers]

    def _freeze_stages(self) -> None:
        super()._freeze_stages()
        for attention in self.depth_attentions() if hasattr(self, 'res_layers') and isinstance(
                getattr(self, self.res_layers[0]), SDAStage) else ():
            attention.requires_grad_(True)

    def train(self, mode: bool = True):
        super().train(mode)
        if isinstance(getattr(self, self.res_layers[0], None), SDAStage):
            for attention in self.depth_attentions():
                attention.train(mode)
        return self

    def init_weights(self) -> None:
        pretrained = self.init_cfg if is_pretrained_cfg(self.init_cfg) else None
        if pretrained is not None:
            self.init_cfg = None
        super().init_weights()
        for attention in self.depth_attentions():  # PyTorch's default init, as the official
            for module in attention.modules():
                if hasattr(module, 'reset_parameters') and module is not attention:
                    module.reset_parameters()
        if pretrained is not None:
            self.init_cfg = pretrained
            load_checked(
                self,
                pretrained,
                may_be_missing=lambda key: '.depth_attention.' in f'.{key}',
                convert=lambda state: state)


@MMDET_MODELS.register_module(name='SDAResNet')
class SDAResNet(SDAResNetMixin, MMDetResNet):
    """mmdet ``ResNet`` with SDA-xNet's stage-wise depth attention (see the module)."""
