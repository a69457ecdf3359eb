"""Load a whole model's checkpoint, refusing one that does not fit."""
import os.path as osp
from typing import Dict, List

import torch
import torch.nn as nn
from torch import Tensor


def _first(keys: List[str], count: int = 5) -> str:
    more = f' (and {len(keys) - count} more)' if len(keys) > count else ''
    return ', '.join(keys[:count]) + more


def checkpoint_state_dict(path: str) -> Dict[str, Tensor]:
    """The state dict of an mmengine checkpoint (or of a plain one), ``module.`` removed."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    # weights_only: a user's file is data, never code (mmengine's types are allow-listed by
    # mmdas.utils.checkpoint).
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise TypeError(f'checkpoint {path!r} holds no state dict (got {type(state).__name__})')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def load_model_checkpoint(model: nn.Module, path: str) -> None:
    """Load ``path`` into ``model`` exactly: every tensor present, nothing extra, same shapes.

    Raises ``ValueError`` naming the first mismatched keys, where mmengine's ``load_checkpoint``
    with ``strict=False`` would only log them and leave part of the model random.
    """
    state = checkpoint_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [
        f'{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}' for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = [
        f'{len(missing)} missing ({_first(missing)})' if missing else '',
        f'{len(unexpected)} unexpected ({_first(unexpected)})' if unexpected else '',
        f'{len(reshaped)} with another shape ({_first(reshaped, 3)})' if reshaped else ''
    ]
    if any(problems):
        raise ValueError(f'checkpoint {path!r} does not fit the model of the config: ' +
                         '; '.join(p for p in problems if p) +
                         '. Is it a checkpoint trained from this config?')
    model.load_state_dict(state)
