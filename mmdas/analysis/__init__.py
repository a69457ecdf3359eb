"""Cost (parameters, multiply-adds), timing and attention (gate maps, Grad-CAM, sfd) analysis."""
from .attention import (BoxClassScores, Explanation, PreparedImage, explain, gate_maps,
                        prepare_image, resolve_layers, stage_end_layers)
from .complexity import Complexity, analyze, deform_conv_flop_jit
from .sfd import DEFAULT_BASE, DEFAULT_THRESHOLD, UndefinedScore, antilog_scale, sfd_score

__all__ = [
    'Complexity', 'analyze', 'deform_conv_flop_jit', 'DEFAULT_BASE', 'DEFAULT_THRESHOLD',
    'UndefinedScore', 'antilog_scale', 'sfd_score', 'BoxClassScores', 'Explanation',
    'PreparedImage', 'explain', 'gate_maps', 'prepare_image', 'resolve_layers', 'stage_end_layers'
]
