"""What defines a training stage, written beside its checkpoints as ``stage_record.json``.

A record holds the stage's resolved config (every setting, flattened; where it writes, how it
resumes, how it shows progress and how processes talk left out), the checkpoint it starts from
and the SHA-256 of the local files it starts from, the code that trains it (mmdas's version and
a digest of its own source files, the versions of torch and the OpenMMLab stack) and the world
that trains it (processes, total batch, learning rate after ``auto_scale_lr``). Two records
differ in a list of named lines (:func:`record_differences`); code and world differences can be
accepted explicitly, and an accepted difference is kept in the record (``accepted``).
"""
import copy
import hashlib
import importlib.metadata
import os
import os.path as osp
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.dist import get_world_size

#: Settings that do not change what a stage trains: where it writes, how it resumes, and how
#: its processes are set up (DDP wrapper arguments, the process group's backend and timeout).
UNRECORDED_KEYS = ('work_dir', 'resume', 'load_from', 'launcher', 'env_cfg', 'model_wrapper_cfg')
#: How a stage shows its progress (:func:`mmdas.engine.quiet_cfg`), not what it trains.
PRESENTATION = dict(runner_type='QuietRunner', hook_type='ProgressBarHook')
#: Record sections a user may accept a difference in (``--accept``), and what they hold.
ACCEPTABLE = dict(
    code='the mmdas source and the framework versions',
    world='the number of processes, the total batch and the scaled lr')
PACKAGE_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


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


def source_digest(root: str = PACKAGE_ROOT) -> str:
    """The SHA-256 of the Python sources under ``root`` (mmdas's own package by default): their
    paths and bytes. Documentation, configs and git state do not count; any code edit does."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ('__pycache__', '.mim'))
        for name in sorted(f for f in files if f.endswith('.py')):
            path = osp.join(folder, name)
            digest.update(osp.relpath(path, root).replace(os.sep, '/').encode() + b'\0')
            digest.update(file_digest(path).encode())
    return digest.hexdigest()


def code_fingerprint() -> Dict[str, str]:
    """The code a stage is trained with: mmdas's version and source digest, and the versions
    of torch and the installed OpenMMLab frameworks."""
    from mmdas.version import FRAMEWORKS, __version__
    code = dict(mmdas=__version__, mmdas_source_sha256=source_digest())
    for name in FRAMEWORKS:  # the distributions mmdas checks at import, those installed
        try:
            code[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return code


def world_settings(cfg: Config, world_size: Optional[int] = None) -> Dict[str, Any]:
    """The processes a stage trains on, its total batch and its learning rate after mmengine's
    ``auto_scale_lr`` (``Runner.scale_lr``: lr x total batch / ``base_batch_size`` when
    enabled)."""
    world_size = get_world_size() if world_size is None else world_size
    total = world_size * cfg.train_dataloader.batch_size
    lr = (cfg.get('optim_wrapper') or {}).get('optimizer', {}).get('lr')
    scale = cfg.get('auto_scale_lr') or {}
    if lr is not None and scale.get('enable', False):
        lr = lr * total / scale['base_batch_size']
    return dict(world_size=world_size, total_batch=total, lr=lr)


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


def stage_record(cfg: Config,
                 load_from: Optional[str],
                 world_size: Optional[int] = None) -> Dict[str, Any]:
    """What defines a stage (see the module's docstring); ``world_size`` defaults to the
    current process group's."""
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
        load_from=load_from,
        config=_flatten(settings),
        inputs=input_digests(cfg, load_from),
        code=code_fingerprint(),
        world=world_settings(cfg, world_size))


def _section_differences(section: str, old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    if section in ('code', 'world') and section not in old:
        return [
            f'{section}: not recorded (a stage written by mmdas < 0.5), '
            f'{_flatten(new[section])} now'
        ]
    before, now = old.get(section, {}), new.get(section, {})
    keys = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    return [
        f"{section}.{key}: {before.get(key, '(unset)')} then, {now.get(key, '(unset)')} now"
        for key in keys
    ]


def record_differences(old: Dict[str, Any],
                       new: Dict[str, Any],
                       accept: Sequence[str] = (),
                       most: int = 8) -> Tuple[List[str], List[str]]:
    """Lines naming what differs between two stage records: ``(blocking, accepted)``, where the
    differences in the sections named in ``accept`` (of :data:`ACCEPTABLE`) are accepted and
    every other one blocks (at most ``most`` config settings are named)."""
    unknown = set(accept) - set(ACCEPTABLE)
    if unknown:
        raise ValueError(f'accept must name sections of {tuple(ACCEPTABLE)}, got {sorted(unknown)}')
    blocking = []
    if old.get('load_from') != new.get('load_from'):
        blocking.append(f"load_from: {old.get('load_from')!r} then, {new.get('load_from')!r} now")
    for path in sorted(set(old.get('inputs', {})) | set(new.get('inputs', {}))):
        if old.get('inputs', {}).get(path) != new.get('inputs', {}).get(path):
            blocking.append(
                f'{path}: other content than when this stage started (retrained since?)')
    before, now = old.get('config', {}), new.get('config', {})
    # settings a record no longer keeps (an older record may hold them) are no difference
    keys = sorted(
        k for k in set(before) | set(now)
        if before.get(k) != now.get(k) and k.split('.')[0] not in UNRECORDED_KEYS)
    for key in keys[:most]:
        blocking.append(f"{key}: {before.get(key, '(unset)')} then, {now.get(key, '(unset)')} now")
    if len(keys) > most:
        blocking.append(f'... and {len(keys) - most} more settings')
    accepted = []
    for section in ACCEPTABLE:
        lines = _section_differences(section, old, new)
        (accepted if section in accept else blocking).extend(lines)
    return blocking, accepted


def same_stage(old: Dict[str, Any], new: Dict[str, Any]) -> bool:
    """Whether two records describe the same stage (accepted differences aside)."""
    return {k: v for k, v in old.items() if k != 'accepted'} == new


def with_accepted(new: Dict[str, Any], old: Dict[str, Any], accepted: List[str]) -> Dict[str, Any]:
    """``new``, keeping ``old``'s accepted differences and adding ``accepted`` (with the time)."""
    history = list(old.get('accepted', []))
    if accepted:
        history.append(dict(time=time.strftime('%Y-%m-%d %H:%M:%S'), differences=accepted))
    return dict(new, accepted=history) if history else dict(new)
