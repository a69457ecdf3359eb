from .progress import ProgressBarHook
from .quiet import QuietRunner, console, quiet_cfg, quiet_console
from .shapes_demo import shapes_demo_cfg
from .two_stage import StaleStageError, backbone_warmup_cfg, build_runner, run_stage, run_two_stage

__all__ = [
    'ProgressBarHook', 'QuietRunner', 'StaleStageError', 'console', 'quiet_cfg', 'quiet_console',
    'backbone_warmup_cfg', 'build_runner', 'run_stage', 'run_two_stage', 'shapes_demo_cfg'
]
