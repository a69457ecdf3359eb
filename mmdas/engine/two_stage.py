"""The two-stage DAS detection schedule: backbone warm-up, then full fine-tune.

Each stage is an ordinary mmengine training run in its own work dir. A stage that finished
(``stage_done.json`` written after ``runner.train()`` returned) is skipped; a stage that was
interrupted resumes from its last checkpoint with optimizer, scheduler and iteration state;
stage 2 starts from stage 1's final weights.
"""
import copy
import json
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner, find_latest_checkpoint

DONE_FILE = 'stage_done.json'


def build_runner(cfg: Config) -> Runner:
    """Build the runner a config asks for, as mmdet's and mmpretrain's train.py do."""
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def backbone_warmup_cfg(cfg: Config, **train_cfg) -> Config:
    """Stage-1 config derived from ``cfg``: every top-level model part but the backbone gets
    lr 0 and weight decay 0 (so it stays bit-identical); ``train_cfg`` overrides the loop."""
    cfg = copy.deepcopy(cfg)  # Config.copy() is shallow: never touch the caller's config
    frozen = [
        name for name, part in cfg.model.items()
        if isinstance(part, dict) and 'type' in part and name not in ('backbone',
                                                                      'data_preprocessor')
    ]
    paramwise = dict(cfg.optim_wrapper.get('paramwise_cfg') or {})
    custom_keys = dict(paramwise.get('custom_keys') or {})
    custom_keys.update({f'{name}.': dict(lr_mult=0.0, decay_mult=0.0) for name in frozen})
    paramwise['custom_keys'] = custom_keys
    cfg.optim_wrapper.paramwise_cfg = paramwise
    cfg.train_cfg.update(train_cfg)
    return cfg


def run_stage(cfg: Config, work_dir: str, load_from: Optional[str] = None) -> str:
    """Train ``cfg`` in ``work_dir`` unless already done; return its final checkpoint."""
    done = osp.join(work_dir, DONE_FILE)
    if osp.isfile(done):
        with open(done) as f:
            checkpoint = json.load(f)['checkpoint']
        print(f'[two-stage] {work_dir}: finished earlier, using {checkpoint}')
        return checkpoint
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    interrupted = find_latest_checkpoint(work_dir) if osp.isdir(work_dir) else None
    cfg.resume = interrupted is not None
    cfg.load_from = None if interrupted else (load_from or cfg.get('load_from'))
    if interrupted:
        print(f'[two-stage] {work_dir}: resuming from {interrupted}')
    build_runner(cfg).train()
    checkpoint = find_latest_checkpoint(work_dir)
    if checkpoint is None:
        raise RuntimeError(f'{work_dir}: training ended without a checkpoint; keep '
                           "default_hooks.checkpoint (with save_last=True) in the config")
    with open(done, 'w') as f:
        json.dump(dict(checkpoint=checkpoint), f)
    return checkpoint


def run_two_stage(stage_cfgs: Sequence[Config],
                  work_dir: str,
                  stage1_load_from: Optional[str] = None) -> str:
    """Run stage 1 (warm-up) then stage 2 (fine-tune from stage 1); return the final checkpoint."""
    if len(stage_cfgs) != 2:
        raise ValueError(
            f'stage_cfgs must hold 2 configs (warm-up, fine-tune), got {len(stage_cfgs)}')
    warmup, finetune = stage_cfgs
    stage1 = run_stage(warmup, osp.join(work_dir, 'stage1_backbone_warmup'), stage1_load_from)
    return run_stage(finetune, osp.join(work_dir, 'stage2_finetune'), stage1)
