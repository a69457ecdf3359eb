from .norm import GroupNormAnySize

__all__ = ['GroupNormAnySize']
