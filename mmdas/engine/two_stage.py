"""The two-stage DAS detection schedule: backbone warm-up, then full fine-tune.

Each stage is an ordinary mmengine training run in its own work dir, on one process or many
(torchrun, slurm, mpi). Beside its checkpoints a stage records what defines it
(``stage_record.json``, :mod:`mmdas.engine.stage_record`: its resolved config, start, code and
world; ``config.py``, the config as dumped, for people). A rerun reuses a finished stage and
resumes an interrupted one (optimizer, scheduler and iteration state) only under the same
record; a stage whose record differs, or that has none, stops the run with an error naming what
differs, unless ``retrain_stale`` moves it aside and trains it again, or the differences lie in
sections the user accepts (``accept``: another mmdas or framework version, another world size).

Under several processes every decision is taken once, on rank 0 (the record check, any move
aside, the record, ``stage_done.json``), and broadcast before any rank builds a runner: every
rank reuses, resumes or trains alike, or raises the same :class:`StaleStageError`. Stage 2
starts on every rank from the checkpoint rank 0 names, after every rank finished stage 1.
"""
import copy
import json
import os
import os.path as osp
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from mmengine.config import Config, ConfigDict
from mmengine.dist import (all_gather_object, barrier, broadcast_object_list, get_rank,
                           get_world_size)
from mmengine.runner import find_latest_checkpoint

from .runner import build_runner
from .stage_record import ACCEPTABLE, record_differences, same_stage, stage_record, with_accepted

DONE_FILE = 'stage_done.json'
RECORD_FILE = 'stage_record.json'


class StaleStageError(RuntimeError):
    """A work dir holds a stage trained (or started) under another record."""


def backbone_warmup_cfg(cfg: Config, **train_cfg) -> Config:
    """Stage-1 config derived from a detector config ``cfg`` (never changed): the same
    detector built through :func:`mmdas.models.BackboneWarmup`, so every part but the backbone
    is frozen (``requires_grad=False``) and stays bit-identical; ``train_cfg`` overrides the
    loop."""
    cfg = copy.deepcopy(cfg)  # Config.copy() is shallow: never touch the caller's config
    model = dict(cfg.model)
    if model.get('type') == 'BackboneWarmup':
        raise ValueError('cfg is a backbone warm-up config already (model.type=BackboneWarmup)')
    cfg.model = ConfigDict(type='BackboneWarmup', detector=model.pop('type'), **model)
    cfg.train_cfg.update(train_cfg)
    return cfg


def _read_json(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _write_json(path: str, value: dict) -> None:
    with open(path, 'w') as f:
        json.dump(value, f, indent=1, sort_keys=True)


def _in_dir(path: str, folder: str) -> bool:
    """Whether the file ``path`` lies directly in ``folder`` (a stage's checkpoint)."""
    return osp.dirname(osp.abspath(path)) == osp.abspath(folder)


def _log(message: str) -> None:
    rank = f' rank {get_rank()}/{get_world_size()}' if get_world_size() > 1 else ''
    print(f'[two-stage{rank}] {message}', flush=True)


@dataclass
class StagePlan:
    """What every rank does with a stage: ``action`` is 'reuse' (``checkpoint`` is its final
    one), 'resume' (from ``checkpoint``), 'train', 'stale' (another stage is there) or 'error'
    (anything rank 0 raised); ``message`` says why."""
    action: str
    checkpoint: Optional[str] = None
    message: str = ''


def decided_once(decide: Callable[[], StagePlan]) -> StagePlan:
    """``decide()`` run on rank 0 only, its plan given to every rank. Anything rank 0 raises
    becomes an 'error' plan, so every rank stops with the same message and none waits for a
    broadcast that never comes."""
    plan = [None]
    if get_rank() == 0:
        try:
            plan[0] = decide()
        except Exception as err:  # handed to every rank, raised there
            plan[0] = StagePlan('error', message=f'{type(err).__name__}: {err}')
    if get_world_size() > 1:
        broadcast_object_list(plan, src=0)
    return plan[0]


def check_shared_work_dir(work_dir: str) -> None:
    """Every rank must see the files rank 0 writes into ``work_dir`` (records, checkpoints):
    rank 0 writes a token there and every rank reads it back; a rank that cannot (another node
    with a local disk) stops the run on every rank, naming the ranks and their hosts."""
    if get_world_size() == 1:
        return
    token = [uuid.uuid4().hex if get_rank() == 0 else None]
    probe = osp.join(work_dir, '.shared-work-dir-check')
    if get_rank() == 0:
        os.makedirs(work_dir, exist_ok=True)
        with open(probe, 'w') as f:
            f.write(token[0])
    broadcast_object_list(token, src=0)
    barrier()
    try:
        with open(probe) as f:
            seen = f.read() == token[0]
    except OSError:
        seen = False
    views = all_gather_object((seen, socket.gethostname()))
    barrier()
    if get_rank() == 0:
        os.remove(probe)
    blind = [f'rank {rank} on {host}' for rank, (ok, host) in enumerate(views) if not ok]
    if blind:
        raise RuntimeError(
            f'--work-dir {work_dir} is not shared by every process: {", ".join(blind)} cannot '
            'read the file rank 0 wrote there. Put the work dir on storage every node mounts '
            '(the stage records, checkpoints and the stage-2 start are read by every rank).')


def _plan_stage(work_dir: str, record: dict, retrain_stale: bool, accept: Sequence[str],
                resume_from: Optional[str]) -> StagePlan:
    """Rank 0's decision for one stage, with its side effects (move aside, record, done)."""
    old = _read_json(osp.join(work_dir, RECORD_FILE))
    done = _read_json(osp.join(work_dir, DONE_FILE))
    latest = find_latest_checkpoint(work_dir) if osp.isdir(work_dir) else None
    started = old is not None or done is not None or latest is not None
    accepted = []
    if started and not (old is not None and same_stage(old, record)):
        why, accepted = (['it has no stage record (trained by an older mmdas or by hand)'],
                         []) if old is None else record_differences(old, record, accept)
        if why and retrain_stale:
            aside = f"{work_dir.rstrip('/')}.stale-{time.strftime('%Y%m%d_%H%M%S')}"
            os.rename(work_dir, aside)
            _log(f'{work_dir}: another stage was there, moved to {aside}')
            old = done = latest = None
            accepted = []
        elif why:
            options = ', '.join(f'{name} ({what})' for name, what in ACCEPTABLE.items())
            return StagePlan(
                'stale',
                message=f'{work_dir} holds a stage that is not the one asked for, so it is '
                'neither reused nor resumed:\n  ' + '\n  '.join(why) +
                '\nTrain into a new work dir (--work-dir), or retrain the stage with '
                '--retrain-stale (the old one is moved aside, not deleted). Differences in '
                f'{options} alone can be accepted with --accept.')
        else:
            _log(f'{work_dir}: accepted differences from the recorded stage:\n  ' +
                 '\n  '.join(accepted))
    os.makedirs(work_dir, exist_ok=True)
    _write_json(osp.join(work_dir, RECORD_FILE), with_accepted(record, old or {}, accepted))
    if done is not None:
        return StagePlan('reuse', done['checkpoint'])
    if resume_from is not None:
        if not _in_dir(resume_from, work_dir):
            raise ValueError(f'--resume {resume_from}: not a checkpoint of this unfinished stage '
                             f'(its checkpoints are in {work_dir})')
        return StagePlan('resume', resume_from)
    return StagePlan('resume', latest) if latest else StagePlan('train')


def run_stage(cfg: Config,
              work_dir: str,
              load_from: Optional[str] = None,
              retrain_stale: bool = False,
              accept: Sequence[str] = (),
              resume_from: Optional[str] = None) -> str:
    """Train ``cfg`` in ``work_dir`` unless the same stage finished there; return its final
    checkpoint. The same stage interrupted resumes (from its latest checkpoint, or from
    ``resume_from``); another stage raises :class:`StaleStageError` (or is moved aside with
    ``retrain_stale``; differences in the record sections named in ``accept`` are accepted and
    recorded). Decided on rank 0 for every rank (:func:`decided_once`)."""
    start_from = load_from or cfg.get('load_from')
    record = stage_record(cfg, start_from)
    plan = decided_once(lambda: _plan_stage(work_dir, record, retrain_stale, accept, resume_from))
    if plan.action == 'stale':
        raise StaleStageError(plan.message)
    if plan.action == 'error':
        raise RuntimeError(f'rank 0 stopped the stage in {work_dir}: {plan.message}')
    if plan.action == 'reuse':
        _log(f'{work_dir}: the same stage finished earlier, using {plan.checkpoint}')
        return plan.checkpoint
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.resume = plan.action == 'resume'
    cfg.load_from = plan.checkpoint if cfg.resume else start_from
    if cfg.resume:
        _log(f'{work_dir}: resuming the same stage from {plan.checkpoint}')
    if get_rank() == 0:
        cfg.dump(osp.join(work_dir, 'config.py'))
    build_runner(cfg).train()
    barrier()  # every rank finished; rank 0 names the final checkpoint
    plan = decided_once(lambda: _finish_stage(work_dir))
    if plan.action == 'error':
        raise RuntimeError(plan.message)
    return plan.checkpoint


def _finish_stage(work_dir: str) -> StagePlan:
    checkpoint = find_latest_checkpoint(work_dir)
    if checkpoint is None:
        raise RuntimeError(f'{work_dir}: training ended without a checkpoint; keep '
                           "default_hooks.checkpoint (with save_last=True) in the config")
    _write_json(osp.join(work_dir, DONE_FILE), dict(checkpoint=checkpoint))
    return StagePlan('reuse', checkpoint)


def run_two_stage(stage_cfgs: Sequence[Config],
                  work_dir: str,
                  stage1_load_from: Optional[str] = None,
                  retrain_stale: bool = False,
                  accept: Sequence[str] = (),
                  resume_from: Optional[str] = None) -> str:
    """Run stage 1 (warm-up) then stage 2 (fine-tune from stage 1); return the final checkpoint.

    Stage 1 trains the backbone against frozen heads, so it must start from a trained detector
    (``stage1_load_from``, or the warm-up config's ``load_from``); without one it raises before
    anything is built. ``resume_from`` (a checkpoint inside one stage's work dir) resumes that
    stage from it; ``retrain_stale`` and ``accept`` as in :func:`run_stage`. Under several
    processes the work dir must be shared (:func:`check_shared_work_dir`).
    """
    if len(stage_cfgs) != 2:
        raise ValueError(
            f'stage_cfgs must hold 2 configs (warm-up, fine-tune), got {len(stage_cfgs)}')
    warmup, finetune = stage_cfgs
    if not (stage1_load_from or warmup.get('load_from')):
        raise ValueError(
            'the backbone warm-up (stage 1) needs trained heads: everything but the backbone is '
            'frozen, so from random heads its gradients mean nothing. Pass '
            '--stage1-load-from CKPT (stage1_load_from=...), a trained vanilla detector of the '
            'same config family, or set load_from in the warm-up config.')
    dirs = [osp.join(work_dir, name) for name in ('stage1_backbone_warmup', 'stage2_finetune')]
    if resume_from is not None and not any(_in_dir(resume_from, d) for d in dirs):
        raise ValueError(f'--resume {resume_from}: not a checkpoint of either stage (in '
                         f'{dirs[0]} or {dirs[1]})')
    check_shared_work_dir(work_dir)

    def resume_in(stage_dir: str) -> Optional[str]:
        return resume_from if resume_from and _in_dir(resume_from, stage_dir) else None

    stage1 = run_stage(warmup, dirs[0], stage1_load_from, retrain_stale, accept, resume_in(dirs[0]))
    return run_stage(finetune, dirs[1], stage1, retrain_stale, accept, resume_in(dirs[1]))
