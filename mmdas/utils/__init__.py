from .checkpoint import allow_mmengine_checkpoints
from .config import register_config_package, runner_model_cfg
from .det_sample import unscaled_det_sample
from .dist import setup_cpu_distributed
from .model_checkpoint import checkpoint_state_dict, load_model_checkpoint

__all__ = [
    'allow_mmengine_checkpoints', 'register_config_package', 'runner_model_cfg',
    'setup_cpu_distributed', 'checkpoint_state_dict', 'load_model_checkpoint', 'unscaled_det_sample'
]
