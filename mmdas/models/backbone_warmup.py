"""Stage 1 of the paper's two-stage detection schedule as a model config: the backbone trains,
everything else is frozen (Salajegheh et al., 2023: the freshly inserted gates are
"noise" to a trained detector; a backbone-only warm-up comes first).

``model = dict(type='BackboneWarmup', detector='FasterRCNN', backbone=..., neck=..., ...)`` is
the detector's own config with its ``type`` moved to ``detector``: it builds that detector,
unchanged (its class, subclassed only to keep ``train`` from moving frozen statistics; the same
state-dict keys), with ``requires_grad=False`` on every parameter outside ``trainable``. Frozen
at build time, before mmengine's runner wraps the model in DDP: frozen parts take no gradients,
so gradient clipping sees the backbone alone and DDP needs no search for unused parameters;
with no gradient SGD leaves them bit-identical. Their BatchNorms stay in eval mode (RTMDet's and
YOLOX's necks have them): their running statistics do not move either.
"""
import functools
from typing import Sequence

import torch.nn as nn
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from .runtime_class import reduce_by_maker


class FrozenPartsMixin:
    """``train(mode)`` as the detector's, then the BatchNorms of the frozen parts in eval."""
    warmup_trainable: Sequence[str] = ('backbone', )

    def train(self, mode: bool = True) -> nn.Module:
        super().train(mode)
        for name, part in self.named_children():
            if name not in self.warmup_trainable:
                for module in part.modules():
                    if isinstance(module, _BatchNorm):
                        module.eval()
        return self

    def __reduce_ex__(self, protocol: int) -> tuple:
        return reduce_by_maker(self, protocol, warmup_class, FrozenPartsMixin)


@functools.lru_cache(maxsize=None)
def warmup_class(detector_cls: type) -> type:
    """``detector_cls`` with :class:`FrozenPartsMixin` (one per detector class), under the
    detector's own name (the export and its check tell families by class name)."""
    return type(detector_cls.__name__, (FrozenPartsMixin, detector_cls),
                {'__qualname__': detector_cls.__qualname__})


@MODELS.register_module()
def BackboneWarmup(detector: str, trainable: Sequence[str] = ('backbone', ), **model) -> nn.Module:
    """The detector of type ``detector`` built from ``model``, every parameter outside the
    top-level parts named in ``trainable`` frozen."""
    if not isinstance(detector, str):
        raise ValueError(f"detector must be the detector's type name (e.g. 'FasterRCNN'), "
                         f'got {detector!r}')
    built = MODELS.build(dict(model, type=detector))
    parts = [name for name, _ in built.named_children()]
    unknown = [name for name in trainable if name not in parts]
    if isinstance(trainable, str) or not trainable or unknown:
        raise ValueError(f'trainable must name parts of {detector} ({", ".join(parts)}), '
                         f'got {trainable!r}')
    for name, part in built.named_children():
        if name not in trainable:
            part.requires_grad_(False)
    built.__class__ = warmup_class(type(built))
    built.warmup_trainable = tuple(trainable)
    return built.train(built.training)
