from .norm import GroupNormAnySize
from .stage_depth_attention import StageDepthAttention, sda_hidden_channels

__all__ = ['GroupNormAnySize', 'StageDepthAttention', 'sda_hidden_channels']
