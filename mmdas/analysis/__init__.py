from .complexity import Complexity, analyze, deform_conv_flop_jit

__all__ = ['Complexity', 'analyze', 'deform_conv_flop_jit']
