from .checkpoint import allow_mmengine_checkpoints
from .dist import setup_cpu_distributed

__all__ = ['allow_mmengine_checkpoints', 'setup_cpu_distributed']
