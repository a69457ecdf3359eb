"""How mmdas sets up the stack at import time.

Each function mends one gap of the pinned stack (mmengine 0.10.7 with torch 2.14), as
mmyolo's ``utils/setup_env.py`` keeps its own:

* :func:`allow_mmengine_checkpoints`: torch 2.6 made ``torch.load(weights_only=True)`` the
  default and mmengine 0.10.7 calls ``torch.load`` without ``weights_only``, so resuming or
  ``load_from`` an mmengine checkpoint fails: besides tensors, its message hub pickles
  ``HistoryBuffer`` objects (numpy arrays inside) whose state names their statistics methods as
  ``getattr(HistoryBuffer, 'mean')``. Rather than loading with ``weights_only=False`` (which lets
  a file run any code), the plain data types mmengine writes are added to torch's allowlist, and
  ``builtins.getattr`` is mapped to a stand-in that resolves only those ``HistoryBuffer``
  methods. Every other global, and every other ``getattr``, in a file is still refused.
* :func:`register_config_package`: ``mmdas::`` config paths.

``import mmdas`` calls :func:`setup_env`. (torchrun without CUDA:
:func:`mmdas.engine.launch.init_distributed`.)
"""
import pickle
from typing import Callable, List

import numpy as np
import torch
from mmengine.config import Config

HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(obj: object, name: str) -> Callable:
    """``getattr`` for unpickling, limited to ``HistoryBuffer``'s statistics methods."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint: only '
        f'HistoryBuffer.{{{", ".join(HISTORY_BUFFER_METHODS)}}} are allowed')


def mmengine_checkpoint_types() -> List[object]:
    """The plain-data globals an mmengine checkpoint pickles besides tensors."""
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = np.core.multiarray
    dtype_classes = {
        type(np.dtype(t))
        for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
                  np.uint8, np.bool_)
    }
    return [
        HistoryBuffer, multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
        *sorted(dtype_classes, key=lambda c: c.__name__),
        (history_buffer_getattr, 'builtins.getattr')
    ]


def allow_mmengine_checkpoints() -> None:
    """Allow mmengine's checkpoint types in ``torch.load(weights_only=True)``; idempotent."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:  # torch < 2.4 has no allowlist and no weights_only default
        add_safe_globals(mmengine_checkpoint_types())


def register_config_package() -> None:
    """Let ``_base_ = 'mmdas::das/...'`` resolve (to ``mmdas/.mim/configs``).

    mmengine 0.10.7 resolves ``package::path`` only for the packages of its own table
    (``mmengine.config.utils.MODULE2PACKAGE``): ``import mmdas`` adds itself. mmengine also
    tags every typed dict of such a base with ``_scope_ = package``, assuming that a package is
    one registry scope. mmdas is not: its configs are mmdet, mmpretrain or mmsegmentation
    configs and each declares that framework's ``default_scope``; tagged ``mmdas`` their dicts
    would not build (and a registry searching all three would be ambiguous: ``ResNet``,
    ``RandomFlip``, ``Resize`` exist in several). So ``mmdas::`` paths are resolved without a
    scope of their own, and each dict builds in the scope its config declares.

    A config read before mmdas is imported (mmdet's own ``tools/train.py`` reads it first)
    cannot name ``mmdas::``; our tools, ``mim train mmdas`` and ``mim test mmdas`` import mmdas
    before reading it.
    """
    from mmengine.config import utils as config_utils
    config_utils.MODULE2PACKAGE.setdefault('mmdas', 'mmdas')
    resolve = Config._get_cfg_path
    if getattr(resolve, 'mmdas_unscoped', False):
        return

    def get_cfg_path(cfg_path: str, filename: str):
        path, scope = resolve(cfg_path, filename)
        return path, None if scope == 'mmdas' else scope

    get_cfg_path.mmdas_unscoped = True
    Config._get_cfg_path = staticmethod(get_cfg_path)


def setup_env() -> None:
    """What ``import mmdas`` sets up: safe mmengine checkpoints and ``mmdas::`` configs."""
    allow_mmengine_checkpoints()
    register_config_package()
