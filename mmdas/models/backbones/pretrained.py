"""Checked loading of pretrained weights into a gated backbone.

mmengine's ``PretrainedInit`` loads with ``strict=False`` and only logs what did not fit, so a
ResNet-18 file silently half-initialises a ResNet-50. A gated backbone instead requires every
tensor of its host architecture to arrive with the right shape; only the new gate tensors may
be missing (they keep their fresh init).
"""
from typing import Callable, Dict

import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor

from mmdas.utils import fit_problems, read_state_dict


def is_pretrained_cfg(init_cfg) -> bool:
    return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'


def load_checked(module: nn.Module, init_cfg: dict, may_be_missing: Callable[[str], bool],
                 convert: Callable[[Dict[str, Tensor]], Dict[str, Tensor]]) -> None:
    """Load ``init_cfg['checkpoint']`` (under ``init_cfg['prefix']``) into ``module``; raise if
    it is another architecture. ``convert`` renames the file's keys first (e.g. between mmdet
    and mmpretrain layouts); tensors of the file the module lacks (a classifier's head) are
    ignored and logged."""
    checkpoint = init_cfg['checkpoint']
    try:
        state = convert(read_state_dict(checkpoint, init_cfg.get('prefix')))
    except FileNotFoundError as err:
        raise FileNotFoundError(f'init_cfg {err}') from err
    own = module.state_dict()
    # BN counters are absent from older torchvision files and carry no weights.
    problems = fit_problems(
        own,
        state,
        lambda key: may_be_missing(key) or key.endswith('num_batches_tracked'),
        unexpected_allowed=True)
    if problems:
        raise ValueError(
            f'init_cfg checkpoint {checkpoint!r} does not fit {type(module).__name__}: ' +
            '; '.join(problems) + '. Is it a checkpoint of the same architecture, depth and '
            "width? (use prefix='backbone.' for a detector or classifier checkpoint)")
    module.load_state_dict(state, strict=False)
    print_log(
        f'{type(module).__name__}: loaded {sum(k in state for k in own)} tensors from '
        f'{checkpoint}; new gate tensors, freshly initialised: '
        f'{[k for k in own if k not in state and may_be_missing(k)]}; ignored tensors of the '
        f'file: {[k for k in state if k not in own]}',
        logger='current')


def init_then_load_checked(
        module: nn.Module,
        host_init: Callable[[], None],
        init_new_parts: Callable[[], None],
        may_be_missing: Callable[[str], bool],
        convert: Callable[[Dict[str, Tensor]], Dict[str, Tensor]] = lambda s: s) -> None:
    """A backbone with new parts on a host: the host's init (without its ``Pretrained``
    init_cfg), then the new parts' own init (hosts re-init every conv), then, if ``init_cfg``
    asks for it, :func:`load_checked` with only the new parts' keys allowed missing."""
    pretrained = module.init_cfg if is_pretrained_cfg(module.init_cfg) else None
    if pretrained is not None:
        module.init_cfg = None
    host_init()
    init_new_parts()
    if pretrained is not None:
        module.init_cfg = pretrained
        load_checked(module, pretrained, may_be_missing=may_be_missing, convert=convert)
