"""Reading a checkpoint's state dict, and checking that it fits a model: one place each."""
import os.path as osp
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor


def read_state_dict(checkpoint: str, prefix: Optional[str] = None) -> Dict[str, Tensor]:
    """The state dict of ``checkpoint``: a local file, read as data only (``weights_only=True``;
    mmengine's own types are allow-listed by :mod:`mmdas.utils.setup_env`), or an address
    mmengine fetches (``torchvision://``, ``open-mmlab://``, ``https://``). An mmengine
    checkpoint's ``state_dict`` is taken, ``module.`` (DDP) removed; with ``prefix`` (e.g.
    ``'backbone.'``) only the keys under it, the prefix stripped."""
    if '://' in checkpoint:
        from mmengine.runner.checkpoint import _load_checkpoint
        loaded = _load_checkpoint(checkpoint, map_location='cpu')
    elif not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    else:
        loaded = torch.load(checkpoint, map_location='cpu', weights_only=True)
    state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else loaded
    if not isinstance(state, dict):
        raise TypeError(f'checkpoint {checkpoint!r} holds no state dict (got '
                        f'{type(state).__name__})')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise ValueError(f'no key of checkpoint {checkpoint!r} starts with {prefix!r}')
    return state


def _first(keys: List[str], count: int = 5) -> str:
    more = f' (and {len(keys) - count} more)' if len(keys) > count else ''
    return ', '.join(keys[:count]) + more


def fit_problems(own: Dict[str, Tensor],
                 state: Dict[str, Tensor],
                 may_be_missing: Callable[[str], bool] = lambda key: False,
                 unexpected_allowed: bool = False) -> List[str]:
    """What keeps ``state`` from filling the model whose state dict is ``own``: tensors missing
    (except those ``may_be_missing`` allows), tensors of another shape and, unless allowed,
    tensors the model does not have. Empty when it fits."""
    missing = [k for k in own if k not in state and not may_be_missing(k)]
    unexpected = [] if unexpected_allowed else [k for k in state if k not in own]
    reshaped = [
        f'{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}' for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    return [
        text for text in
        (f'{len(missing)} of its {len(own)} tensors missing ({_first(missing)})' if missing else '',
         f'{len(unexpected)} unexpected ({_first(unexpected)})' if unexpected else '',
         f'{len(reshaped)} with another shape ({_first(reshaped, 3)})' if reshaped else '') if text
    ]


def load_model_checkpoint(model: torch.nn.Module, checkpoint: str) -> None:
    """Load ``checkpoint`` into ``model`` exactly: every tensor present, nothing extra, same
    shapes; otherwise a ``ValueError`` names the first mismatched keys (where mmengine's
    ``load_checkpoint(strict=False)`` would only log them and leave part of the model random)."""
    state = read_state_dict(checkpoint)
    problems = fit_problems(model.state_dict(), state)
    if problems:
        raise ValueError(f'checkpoint {checkpoint!r} does not fit the model of the config: ' +
                         '; '.join(problems) + '. Is it a checkpoint trained from this config?')
    model.load_state_dict(state)
