"""Let mmengine checkpoints load under torch >= 2.6 without turning ``weights_only`` off.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7 calls
``torch.load`` without ``weights_only``, so resuming or ``load_from`` an mmengine checkpoint
fails: besides tensors, its message hub pickles ``HistoryBuffer`` objects (numpy arrays inside)
whose state names their statistics methods as ``getattr(HistoryBuffer, 'mean')``.

Rather than loading with ``weights_only=False`` (which lets a file run any code), the plain data
types mmengine writes are added to torch's allowlist, and ``builtins.getattr`` is mapped to a
stand-in that resolves only those ``HistoryBuffer`` methods. Every other global, and every
other ``getattr``, in a file is still refused.
"""
import pickle
from typing import Callable, List

import numpy as np
import torch

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
