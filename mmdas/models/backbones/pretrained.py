"""Checked loading of pretrained weights into a DAS backbone.

mmengine's ``PretrainedInit`` loads with ``strict=False`` and only logs what did not fit, so a
ResNet-18 file silently half-initialises a ResNet-50. A DAS backbone instead requires every
tensor of its host architecture to arrive with the right shape; only the new gate tensors may
be missing (they keep their fresh init).
"""
import os.path as osp
from typing import Callable, Dict

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_with_prefix
from torch import Tensor

GATE_KEY = '.das_gate.'


def is_pretrained_cfg(init_cfg) -> bool:
    return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'


def _is_local(path: str) -> bool:
    return '://' not in path


def read_state_dict(checkpoint: str, prefix: str = None, map_location='cpu') -> Dict[str, Tensor]:
    """State dict of a checkpoint (file, ``torchvision://``, URL), optionally under ``prefix``."""
    if _is_local(checkpoint) and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'init_cfg checkpoint {checkpoint!r} does not exist')
    if prefix:
        return _load_checkpoint_with_prefix(prefix, checkpoint, map_location=map_location)
    ckpt = _load_checkpoint(checkpoint, map_location=map_location)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise TypeError(
            f'checkpoint {checkpoint!r} holds no state dict (got {type(state).__name__})')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def load_checked(module: nn.Module,
                 init_cfg: dict,
                 may_be_missing: Callable[[str], bool] = lambda key: GATE_KEY in f'.{key}',
                 convert: Callable[[Dict[str, Tensor]], Dict[str, Tensor]] = lambda s: s) -> None:
    """Load ``init_cfg['checkpoint']`` into ``module``; raise if it is another architecture.

    ``convert`` renames the file's keys first (e.g. between mmdet and mmpretrain layouts).
    """
    checkpoint = init_cfg['checkpoint']
    state = convert(
        read_state_dict(checkpoint, init_cfg.get('prefix'), init_cfg.get('map_location', 'cpu')))
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    # BN counters are absent from older torchvision files and carry no weights.
    required_missing = [
        k for k in missing if not may_be_missing(k) and not k.endswith('num_batches_tracked')
    ]
    if required_missing or mismatched:
        details = [
            f'{len(required_missing)} of its {len(own)} tensors missing '
            f'(e.g. {required_missing[:3]})' if required_missing else '',
            f'{len(mismatched)} with another shape (e.g. ' +
            ', '.join(f'{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}'
                      for k in mismatched[:3]) + ')' if mismatched else ''
        ]
        raise ValueError(
            f'init_cfg checkpoint {checkpoint!r} does not fit {type(module).__name__}: ' +
            '; '.join(d for d in details if d) +
            '. Is it a checkpoint of the same architecture, depth and width? '
            "(use prefix='backbone.' for a detector or classifier checkpoint)")
    module.load_state_dict(state, strict=False)
    print_log(
        f'{type(module).__name__}: loaded {len(own) - len(missing)} tensors from '
        f'{checkpoint}; new gate tensors, freshly initialised: '
        f'{[k for k in missing if may_be_missing(k)]}; ignored tensors of the file: '
        f'{unexpected}',
        logger='current')
