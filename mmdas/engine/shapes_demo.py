"""The detection demo's config on the synthetic shapes set: its data root, seed and length."""
import os.path as osp
from typing import Optional, Union

from mmengine.config import Config


def shapes_demo_cfg(cfg: Union[str, Config],
                    data_root: str,
                    seed: int,
                    iters: Optional[int] = None) -> Config:
    """``cfg`` (a path or a Config) reading ``data_root``, seeded with ``seed``.

    With ``iters``, the iteration-based schedule is shortened or lengthened to ``iters``: one
    validation and one checkpoint at its end, the step decay at 80 % of it.
    """
    cfg = Config.fromfile(cfg) if isinstance(cfg, str) else cfg
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = osp.join(data_root, '')
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = osp.join(
        data_root, 'annotations', 'instances_val.json')
    cfg.randomness = dict(seed=seed)
    if iters is not None:
        if iters < 1:
            raise ValueError(f'iters must be a positive number of iterations, got {iters}')
        cfg.train_cfg.update(max_iters=iters, val_interval=iters)
        cfg.param_scheduler[1].update(end=iters, milestones=[int(iters * 0.8)])
        cfg.default_hooks.checkpoint.interval = iters
    return cfg
