"""The two-stage DAS detection schedule: backbone warm-up, then full fine-tune.

Each stage is an ordinary mmengine training run in its own work dir. Beside its checkpoints a
stage records what defines it (``stage_record.json``: its resolved config, the checkpoint it
starts from and the SHA-256 of the local files it starts from; ``config.py``, the config as
dumped, for people). A rerun reuses a finished stage
and resumes an interrupted one (optimizer, scheduler and iteration state) only under the same
record; a stage whose record differs, or that has none, stops the run with an error naming what
differs, unless ``retrain_stale`` moves it aside and trains it again. Stage 2 starts from stage
1's final weights; stage 1 must start from a trained detector (the paper's warm-up trains the
backbone against trained heads).
"""
import copy
import hashlib
import json
import os
import os.path as osp
import time
from typing import Any, Dict, List, Optional, Sequence

from mmengine.config import Config
from mmengine.runner import find_latest_checkpoint

from .runner import build_runner

DONE_FILE = 'stage_done.json'
RECORD_FILE = 'stage_record.json'
#: Settings that do not change what a stage trains: where it writes and how it resumes.
UNRECORDED_KEYS = ('work_dir', 'resume', 'load_from', 'launcher')
#: How a stage shows its progress (:func:`mmdas.engine.quiet_cfg`), not what it trains.
PRESENTATION = dict(runner_type='QuietRunner', hook_type='ProgressBarHook')


class StaleStageError(RuntimeError):
    """A work dir holds a stage trained (or started) under another record."""


def backbone_warmup_cfg(cfg: Config, **train_cfg) -> Config:
    """Stage-1 config derived from ``cfg``: every top-level model part but the backbone gets
    lr 0 and weight decay 0 (so it stays bit-identical); ``train_cfg`` overrides the loop."""
    cfg = copy.deepcopy(cfg)  # Config.copy() is shallow: never touch the caller's config
    frozen = [
        name for name, part in cfg.model.items()
        if isinstance(part, dict) and 'type' in part and name not in ('backbone',
                                                                      'data_preprocessor')
    ]
    paramwise = dict(cfg.optim_wrapper.get('paramwise_cfg') or {})
    custom_keys = dict(paramwise.get('custom_keys') or {})
    custom_keys.update({f'{name}.': dict(lr_mult=0.0, decay_mult=0.0) for name in frozen})
    paramwise['custom_keys'] = custom_keys
    cfg.optim_wrapper.paramwise_cfg = paramwise
    cfg.train_cfg.update(train_cfg)
    return cfg


def _flatten(value: Any, prefix: str = '') -> Dict[str, str]:
    """``{'a.b.0.c': repr(leaf)}`` for nested dicts and lists."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return {prefix: repr(value)}
    flat = {}
    for key, item in items:
        flat.update(_flatten(item, f'{prefix}.{key}' if prefix else str(key)))
    return flat if flat else {prefix: repr(value)}


def file_digest(path: str) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _pretrained_files(value: Any) -> List[str]:
    """The checkpoints of every ``Pretrained`` init_cfg in a (model) config."""
    if isinstance(value, dict):
        checkpoint = value.get('checkpoint')
        found = [checkpoint
                 ] if value.get('type') == 'Pretrained' and isinstance(checkpoint, str) else []
        return found + [path for item in value.values() for path in _pretrained_files(item)]
    if isinstance(value, (list, tuple)):
        return [path for item in value for path in _pretrained_files(item)]
    return []


def input_digests(cfg: Config, load_from: Optional[str]) -> Dict[str, str]:
    """``{path: sha256}`` of the local files a stage starts from (``load_from``, ``Pretrained``
    checkpoints): the same path holding other weights (an earlier stage retrained) is another
    start. Files that are not local (URLs, ``open-mmlab://``) are recorded by name only."""
    paths = ([load_from] if load_from else []) + _pretrained_files(cfg.get('model', {}))
    return {path: file_digest(path) for path in paths if osp.isfile(path)}


def stage_record(cfg: Config, load_from: Optional[str]) -> Dict[str, Any]:
    """What defines a stage: every setting of its resolved config (flattened to ``path:
    repr(value)``; where it writes, how it resumes and how it shows progress left out), the
    checkpoint it starts from, and the content of the local files it starts from."""
    settings = copy.deepcopy(cfg).to_dict()
    for key in UNRECORDED_KEYS:
        settings.pop(key, None)
    if settings.get('runner_type') == PRESENTATION['runner_type']:
        settings.pop('runner_type')
    hooks = [
        hook for hook in settings.get('custom_hooks') or []
        if not (isinstance(hook, dict) and hook.get('type') == PRESENTATION['hook_type'])
    ]
    settings['custom_hooks'] = hooks
    return dict(
        load_from=load_from, config=_flatten(settings), inputs=input_digests(cfg, load_from))


def record_differences(old: Dict[str, Any], new: Dict[str, Any], most: int = 8) -> List[str]:
    """Lines naming what differs between two stage records (at most ``most`` settings)."""
    lines = []
    if old.get('load_from') != new.get('load_from'):
        lines.append(f"load_from: {old.get('load_from')!r} then, {new.get('load_from')!r} now")
    for path in sorted(set(old.get('inputs', {})) | set(new.get('inputs', {}))):
        if old.get('inputs', {}).get(path) != new.get('inputs', {}).get(path):
            lines.append(f'{path}: other content than when this stage started (retrained since?)')
    before, now = old.get('config', {}), new.get('config', {})
    keys = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    for key in keys[:most]:
        lines.append(f"{key}: {before.get(key, '(unset)')} then, {now.get(key, '(unset)')} now")
    if len(keys) > most:
        lines.append(f'... and {len(keys) - most} more settings')
    return lines


def _read_json(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _check_same_stage(work_dir: str, record: Dict[str, Any], retrain_stale: bool) -> None:
    """Raise :class:`StaleStageError` (or, with ``retrain_stale``, move the stage aside) when
    ``work_dir`` holds a stage that is not the one ``record`` describes."""
    old = _read_json(osp.join(work_dir, RECORD_FILE))
    started = old is not None or osp.isfile(osp.join(
        work_dir, DONE_FILE)) or (osp.isdir(work_dir)
                                  and find_latest_checkpoint(work_dir) is not None)
    if not started or old == record:
        return
    why = ['it has no stage record (trained by an older mmdas or by hand)'] if old is None else \
        record_differences(old, record)
    if retrain_stale:
        aside = f"{work_dir.rstrip('/')}.stale-{time.strftime('%Y%m%d_%H%M%S')}"
        os.rename(work_dir, aside)
        print(f'[two-stage] {work_dir}: another stage was there, moved to {aside}')
        return
    raise StaleStageError(
        f'{work_dir} holds a stage that is not the one asked for, so it is neither reused nor '
        'resumed:\n  ' + '\n  '.join(why or ['(records differ)']) +
        '\nTrain into a new work dir (--work-dir), or retrain the stage with --retrain-stale '
        '(the old one is moved aside, not deleted).')


def run_stage(cfg: Config,
              work_dir: str,
              load_from: Optional[str] = None,
              retrain_stale: bool = False) -> str:
    """Train ``cfg`` in ``work_dir`` unless the same stage finished there; return its final
    checkpoint. The same stage interrupted resumes; another stage raises
    :class:`StaleStageError` (or is moved aside with ``retrain_stale``)."""
    start_from = load_from or cfg.get('load_from')
    record = stage_record(cfg, start_from)
    _check_same_stage(work_dir, record, retrain_stale)
    done = _read_json(osp.join(work_dir, DONE_FILE))
    if done is not None:
        print(
            f"[two-stage] {work_dir}: the same stage finished earlier, using {done['checkpoint']}")
        return done['checkpoint']
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    interrupted = find_latest_checkpoint(work_dir) if osp.isdir(work_dir) else None
    cfg.resume = interrupted is not None
    cfg.load_from = None if interrupted else start_from
    if interrupted:
        print(f'[two-stage] {work_dir}: resuming the same stage from {interrupted}')
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, RECORD_FILE), 'w') as f:
        json.dump(record, f, indent=1, sort_keys=True)
    cfg.dump(osp.join(work_dir, 'config.py'))
    build_runner(cfg).train()
    checkpoint = find_latest_checkpoint(work_dir)
    if checkpoint is None:
        raise RuntimeError(f'{work_dir}: training ended without a checkpoint; keep '
                           "default_hooks.checkpoint (with save_last=True) in the config")
    with open(osp.join(work_dir, DONE_FILE), 'w') as f:
        json.dump(dict(checkpoint=checkpoint), f)
    return checkpoint


def run_two_stage(stage_cfgs: Sequence[Config],
                  work_dir: str,
                  stage1_load_from: Optional[str] = None,
                  retrain_stale: bool = False) -> str:
    """Run stage 1 (warm-up) then stage 2 (fine-tune from stage 1); return the final checkpoint.

    Stage 1 trains the backbone against frozen heads, so it must start from a trained detector
    (``stage1_load_from``, or the warm-up config's ``load_from``); without one it raises before
    anything is built.
    """
    if len(stage_cfgs) != 2:
        raise ValueError(
            f'stage_cfgs must hold 2 configs (warm-up, fine-tune), got {len(stage_cfgs)}')
    warmup, finetune = stage_cfgs
    if not (stage1_load_from or warmup.get('load_from')):
        raise ValueError(
            'the backbone warm-up (stage 1) needs trained heads: its neck, RPN and RoI head are '
            'frozen at lr 0, so from random heads its gradients mean nothing. Pass '
            '--stage1-load-from CKPT (stage1_load_from=...), a trained vanilla detector of the '
            'same config family, or set load_from in the warm-up config.')
    stage1 = run_stage(warmup, osp.join(work_dir, 'stage1_backbone_warmup'), stage1_load_from,
                       retrain_stale)
    return run_stage(finetune, osp.join(work_dir, 'stage2_finetune'), stage1, retrain_stale)
