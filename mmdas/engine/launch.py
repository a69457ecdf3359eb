"""How a command line becomes a run: the framework's own ``tools/train.py`` and
``tools/test.py`` found for a config (:func:`framework_tool`) and run with the process group
started first, gloo on a CPU (:func:`distributed_on_cpu`, :func:`init_distributed`); mmdet's
``tools/train.py`` arguments for ``tools/train_two_stage.py`` (:func:`add_train_args`,
:func:`apply_train_args`), so that each flag means the same in every tool.
"""
import argparse
import contextlib
import importlib
import os
import os.path as osp
import subprocess
from datetime import timedelta
from typing import Iterator, Optional

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.dist import init_dist

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
#: The frameworks whose own tools run a config, by its ``default_scope``.
FRAMEWORKS = ('mmdet', 'mmpretrain', 'mmseg')


def framework_tool(config: Optional[str], name: str) -> str:
    """The path of the installed framework's own ``tools/<name>`` (in its ``.mim/tools``) for
    ``config``: mmdet's, mmpretrain's or mmseg's, by the config's ``default_scope`` (mmdet's
    without a config)."""
    scope = Config.fromfile(config).get('default_scope', 'mmdet') if config else 'mmdet'
    if scope not in FRAMEWORKS:
        raise ValueError(f'{config}: default_scope {scope!r}; the tools run configs of '
                         f'{", ".join(FRAMEWORKS)}')
    path = osp.join(osp.dirname(importlib.import_module(scope).__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{scope} {importlib.import_module(scope).__version__} has no '
                                f'tools/{name} in its installed package ({path})')
    return path


@contextlib.contextmanager
def distributed_on_cpu() -> Iterator[None]:
    """Inside the block, every mmengine ``Runner`` built from a config first starts the process
    group its ``launcher`` asks for (:func:`init_distributed`: gloo where there is no CUDA), so
    that the frameworks' own tools train and test under torchrun or slurm on a CPU."""
    from mmengine.runner import Runner
    original = Runner.__dict__['from_cfg']

    def from_cfg(cls, cfg):
        init_distributed(cfg, cfg.get('launcher', 'none'))
        return original.__func__(cls, cfg)

    Runner.from_cfg = classmethod(from_cfg)
    try:
        yield
    finally:
        Runner.from_cfg = original


def add_launcher_args(parser: argparse.ArgumentParser) -> None:
    """``--launcher``, ``--local-rank`` (``--local_rank``) and ``--cfg-options``."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (an unknown key is added: check spelling)')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """mmdet's training flags: ``--amp``, ``--auto-scale-lr`` and the launcher flags."""
    parser.add_argument(
        '--amp',
        action='store_true',
        help="mixed precision: mmengine's AmpOptimWrapper, fp16 with dynamic loss scale (needs "
        'CUDA, NPU, MLU or MUSA)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale lr by total batch size / auto_scale_lr.base_batch_size (e.g. 4 GPUs for a '
        'config written for 8)')
    add_launcher_args(parser)


def apply_launcher_args(cfg: Config, args: argparse.Namespace) -> None:
    """``cfg.launcher`` and the ``--cfg-options``, in place; ``LOCAL_RANK`` for mmengine."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)


def apply_train_args(cfg: Config, args: argparse.Namespace) -> None:
    """What mmdet's ``tools/train.py`` does with its flags, in place: launcher and overrides,
    ``--amp`` (``AmpOptimWrapper``, dynamic loss scale) and ``--auto-scale-lr`` (raises when the
    config has no ``auto_scale_lr.base_batch_size``)."""
    apply_launcher_args(cfg, args)
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(f'--amp: optim_wrapper.type is {cfg.optim_wrapper.type!r}; --amp '
                             "replaces mmengine's OptimWrapper only")
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config '
                             '(the total batch its lr is written for)')
        cfg.auto_scale_lr.enable = True


def init_distributed(cfg: Config, launcher: str) -> None:
    """Start the process group ``launcher`` asks for, with ``cfg.env_cfg.dist_cfg`` (backend,
    ``timeout`` in seconds), before anything is decided; mmengine's runner then finds it and
    does not start its own. Without CUDA, ``pytorch`` (torchrun) and ``slurm`` run gloo on the
    CPU: mmengine 0.10.7's launchers call ``torch.cuda.set_device`` unconditionally, and DDP of a
    CPU module needs ``device_ids=None`` (set in ``cfg`` whether or not the group exists
    already, so every stage's config gets it). ``slurm`` finds its master as mmengine does
    (``scontrol show hostname $SLURM_NODELIST``, port ``MASTER_PORT`` or 29500)."""
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
    if launcher == 'none':
        return
    dist_cfg = dict((cfg.get('env_cfg') or {}).get('dist_cfg') or {})
    on_cpu = launcher in ('pytorch', 'slurm') and not torch.cuda.is_available()
    if on_cpu:
        wrapper = dict(cfg.get('model_wrapper_cfg') or {})
        wrapper.setdefault('type', 'MMDistributedDataParallel')
        wrapper['device_ids'] = None
        wrapper.setdefault('broadcast_buffers', False)
        cfg.model_wrapper_cfg = wrapper
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if dist.is_initialized():
        return
    if not on_cpu:
        init_dist(launcher, **dist_cfg)
        return
    if launcher == 'slurm':
        nodes = os.environ['SLURM_NODELIST']
        os.environ.setdefault('MASTER_ADDR',
                              subprocess.getoutput(f'scontrol show hostname {nodes} | head -n1'))
        os.environ.setdefault('MASTER_PORT', '29500')
        os.environ['RANK'] = os.environ['SLURM_PROCID']
        os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
        os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    timeout = dist_cfg.get('timeout')
    dist.init_process_group(
        backend='gloo',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **({} if timeout is None else dict(timeout=timedelta(seconds=timeout))))
