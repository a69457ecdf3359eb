"""The runner a config asks for, built as mmdet's and mmpretrain's ``tools/train.py`` build it."""
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def build_runner(cfg: Config) -> Runner:
    """mmengine's ``Runner`` from ``cfg``, or the ``runner_type`` it names."""
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
