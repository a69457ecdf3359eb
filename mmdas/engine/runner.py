"""The runner a config asks for, built as mmdet's and mmpretrain's ``tools/train.py`` build it."""
import copy
import itertools

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

#: Runners built by this process, for their names.
_BUILT = itertools.count()


def build_runner(cfg: Config) -> Runner:
    """mmengine's ``Runner`` from ``cfg``, or the ``runner_type`` it names.

    mmengine hands back an existing logger, message hub or visualizer of the same name instead
    of building one: the first two are named after the experiment, by default the second the
    runner started (``YYYYmmdd_HHMMSS``), and mmdet's and mmpretrain's configs name their
    visualizer ``'visualizer'``. So a second runner in one process (the two stages of
    :func:`run_two_stage`, a demo's stages) would write its visualizer files into the first
    one's folder (and fail once that folder was moved aside), and one started in the same second
    would also share its logger and history. Each runner this process builds gets names of its
    own (``run<n>``, the same sequence on every rank; an ``experiment_name`` the config gives is
    kept); ``cfg`` is not changed.
    """
    cfg = copy.deepcopy(cfg)
    run = f'run{next(_BUILT)}'
    cfg.setdefault('experiment_name', run)
    if isinstance(cfg.get('visualizer'), dict):
        cfg.visualizer.name = f'{run}_visualizer'
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
