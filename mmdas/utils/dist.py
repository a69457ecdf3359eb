"""Distributed training without GPUs (gloo), which mmengine 0.10.7's launcher does not handle.

mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` unconditionally. The Runner
skips its own ``init_dist`` when a process group already exists, and DDP of a CPU module
needs ``device_ids=None``; so on a machine without CUDA we start the gloo group ourselves.
"""
import os

import torch
import torch.distributed as dist
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config, launcher: str) -> None:
    """For ``launcher='pytorch'`` (torchrun) on a machine without CUDA: gloo + CPU DDP."""
    if launcher != 'pytorch' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(
            backend='gloo', rank=int(os.environ['RANK']), world_size=int(os.environ['WORLD_SIZE']))
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    cfg.model_wrapper_cfg = wrapper
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
