from .progress import ProgressBarHook
from .quiet import QuietRunner, console, quiet_cfg, quiet_console
from .runner import build_runner
from .two_stage import StaleStageError, backbone_warmup_cfg, run_stage, run_two_stage

__all__ = [
    'ProgressBarHook', 'QuietRunner', 'StaleStageError', 'console', 'quiet_cfg', 'quiet_console',
    'backbone_warmup_cfg', 'build_runner', 'run_stage', 'run_two_stage'
]
