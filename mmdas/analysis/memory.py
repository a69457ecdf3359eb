"""What a training-mode forward keeps for backward, counted tensor by tensor.

:func:`saved_tensor_bytes` counts the storages autograd saves (each once, through
``torch.autograd.graph.saved_tensors_hooks``) plus the inputs that non-reentrant checkpoints
keep without saving them through autograd's hooks (the segment a :class:`GatedStage` checkpoints
under ``with_cp``): so the host's reentrant checkpoints (which save their input through the
hooks) and ours are counted alike. It does not count the forward's outputs. The process's peak
resident size (``das_bench.timing.peak_rss_bytes``) is the allocator's view of the same.
"""
from typing import Callable, Dict

import torch
import torch.nn as nn

from mmdas.models.backbones.das_backbone import GatedStage


def saved_tensor_bytes(model: nn.Module, forward: Callable[[], object]) -> int:
    """Bytes kept for backward by ``forward()`` (a call of ``model``, or of a method of it),
    each storage once; ``model``'s checkpointed gate segments are found and counted too."""
    kept: Dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        kept[storage.data_ptr()] = storage.nbytes()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        keep(tensor)
        return tensor

    def segment_input(stage: GatedStage) -> Callable:

        def hook(module: nn.Module, args) -> None:
            if stage.with_cp and torch.is_grad_enabled():
                keep(args[0])

        return hook

    handles = [
        list(stage)[-2].register_forward_pre_hook(segment_input(stage))
        for stage in model.modules() if isinstance(stage, GatedStage)
    ]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            forward()
    finally:
        for handle in handles:
            handle.remove()
    return sum(kept.values())
