from .two_stage import backbone_warmup_cfg, build_runner, run_stage, run_two_stage

__all__ = ['backbone_warmup_cfg', 'build_runner', 'run_stage', 'run_two_stage']
