from .launch import (add_train_args, apply_train_args, distributed_on_cpu, framework_tool,
                     init_distributed)
from .progress import ProgressBarHook
from .quiet import QuietRunner, console, quiet_cfg, quiet_console
from .runner import build_runner
from .two_stage import StaleStageError, backbone_warmup_cfg, run_stage, run_two_stage

__all__ = [
    'ProgressBarHook', 'QuietRunner', 'StaleStageError', 'add_train_args', 'apply_train_args',
    'backbone_warmup_cfg', 'build_runner', 'console', 'distributed_on_cpu', 'framework_tool',
    'init_distributed', 'quiet_cfg', 'quiet_console', 'run_stage', 'run_two_stage'
]
