from .checkpoint import fit_problems, load_model_checkpoint, read_state_dict
from .setup_env import allow_mmengine_checkpoints, register_config_package, setup_env

__all__ = [
    'fit_problems', 'load_model_checkpoint', 'read_state_dict', 'allow_mmengine_checkpoints',
    'register_config_package', 'setup_env'
]
