"""The demos on synthetic shapes, in one place: a config pointed at its data, seeded and sized
(:func:`shapes_cfg`), trained and evaluated per task (:func:`train_and_test`,
:func:`train_and_test_detectors`), shown quietly stage by stage (:class:`Stages`), and seeds
summarised (:func:`mean_sd`). ``tools/demo.py``, ``tools/demo_cls.py``,
``tools/analysis/compare_gates.py`` and the tests all go through these functions.
"""
import contextlib
import copy
import os
import os.path as osp
import statistics
import time
from dataclasses import dataclass
from typing import ContextManager, Dict, Optional, Sequence, Union

from mmengine.config import Config

from mmdas.datasets import make_shapes_coco, make_shapes_folder
from mmdas.engine import (backbone_warmup_cfg, build_runner, quiet_cfg, quiet_console, run_stage,
                          run_two_stage)

#: The classification demo's DAS model and its plain twin.
CLS_CONFIGS = dict(
    das='configs/mmpretrain/demo/das-resnet18-w16_shapes-cls.py',
    plain='configs/mmpretrain/demo/resnet18-w16_shapes-cls.py')
#: The detection demo's DAS detector and its vanilla twin.
DET_CONFIGS = dict(
    das='configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py',
    vanilla='configs/das/demo/faster-rcnn_r18-w16_fpn_shapes.py')


def ensure_shapes_data(task: str, data_root: str) -> None:
    """Write the synthetic set of ``task`` ('detection' or 'classification') to ``data_root``
    unless it is there."""
    if task == 'detection':
        if not osp.isfile(osp.join(data_root, 'annotations', 'instances_val.json')):
            print(f'writing the synthetic COCO-format shapes set to {data_root}')
            make_shapes_coco(data_root)
    elif task == 'classification':
        if not osp.isdir(osp.join(data_root, 'masks', 'val')):
            print(f'writing the synthetic shape images to {data_root}')
            make_shapes_folder(data_root)
    else:
        raise ValueError(f"task must be 'detection' or 'classification', got {task!r}")


def shapes_cfg(cfg: Union[str, Config],
               data_root: str,
               seed: int,
               length: Optional[int] = None) -> Config:
    """``cfg`` (a path or a Config, never changed) reading ``data_root`` (its three dataloaders
    and, for COCO, its evaluators' annotation files), seeded with ``seed``.

    With ``length``, the schedule is shortened or lengthened: to ``length`` iterations for an
    iteration-based config (the detection demo: step decay at 80 %), ``length`` epochs for an
    epoch-based one (the classification demo: cosine over the run); one validation and one
    checkpoint at its end.
    """
    cfg = Config.fromfile(cfg) if isinstance(cfg, str) else copy.deepcopy(cfg)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = osp.join(data_root, '')
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        if isinstance(evaluator, dict) and 'ann_file' in evaluator:
            ann_file = osp.basename(evaluator.ann_file)
            evaluator.ann_file = osp.join(data_root, 'annotations', ann_file)
    cfg.randomness = dict(seed=seed)
    if length is None:
        return cfg
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f'length must be a positive number of iterations or epochs, got '
                         f'{length!r}')
    if 'max_iters' in cfg.train_cfg:
        cfg.train_cfg.update(max_iters=length, val_interval=length)
        cfg.param_scheduler[1].update(end=length, milestones=[int(length * 0.8)])
    else:
        cfg.train_cfg.update(max_epochs=length, val_interval=length)
        cfg.param_scheduler.update(T_max=length, end=length)
    cfg.default_hooks.checkpoint.interval = length
    return cfg


class Stages:
    """Numbered, titled stages, each quiet (a progress bar; mmengine's log in its work dir) or
    with mmengine's full log (``verbose``)."""

    def __init__(self, total: int, verbose: bool = False) -> None:
        self.total, self.done, self.verbose = total, 0, verbose

    def cfg(self, cfg: Config, title: str) -> Config:
        """``cfg`` shown as the next stage."""
        self.done += 1
        return self.again(cfg, title)

    def again(self, cfg: Config, title: str) -> Config:
        """``cfg`` shown as part of the current stage (its evaluation, say)."""
        return cfg if self.verbose else quiet_cfg(cfg, f'[{self.done}/{self.total}] {title}')

    def console(self, work_dir: str) -> ContextManager:
        os.makedirs(work_dir, exist_ok=True)
        return contextlib.nullcontext() if self.verbose else quiet_console(
            osp.join(work_dir, 'console.log'))


def evaluate(cfg: Config, checkpoint: str, work_dir: str) -> Dict[str, float]:
    """The test split's metrics of ``checkpoint`` (mmengine's test loop and the config's
    evaluator: pycocotools for detection, top-1 for classification)."""
    cfg = copy.deepcopy(cfg)
    cfg.work_dir, cfg.load_from = work_dir, checkpoint
    return build_runner(cfg).test()


def train_and_test(cfg: Config,
                   work_dir: str,
                   stages: Stages,
                   title: str,
                   retrain_stale: bool = False) -> Dict[str, float]:
    """Train ``cfg`` in ``work_dir`` (reused if the same stage finished there, see
    :func:`mmdas.engine.run_stage`), then evaluate its final checkpoint."""
    with stages.console(work_dir):
        checkpoint = run_stage(stages.cfg(cfg, title), work_dir, retrain_stale=retrain_stale)
        return evaluate(stages.again(cfg, title), checkpoint, osp.join(work_dir, 'test'))


@dataclass(frozen=True)
class DetectionSchedule:
    """Iterations of the detection recipe: the vanilla detector the warm-up starts from, then
    each arm's backbone warm-up and fine-tune."""
    base: int
    warmup: int
    finetune: int

    def name(self) -> str:
        return f'iters-{self.base}-{self.warmup}-{self.finetune}'


@dataclass
class DetectionRun:
    metrics: Dict[str, float]
    checkpoint: str


def train_and_test_detectors(arms: Dict[str, Union[str, Config]],
                             base: Union[str, Config],
                             schedule: DetectionSchedule,
                             data_root: str,
                             seed: int,
                             work_dir: str,
                             stages: Stages,
                             retrain_stale: bool = False) -> Dict[str, DetectionRun]:
    """The paper's detection recipe at demo scale, for each arm from one start: a vanilla
    detector (``base``) trained ``schedule.base`` iterations, then per arm the two-stage
    schedule from it (backbone warm-up against its trained heads, then fine-tune), then COCO
    evaluation with pycocotools. Every arm gets the same iterations and images."""
    base_cfg = shapes_cfg(base, data_root, seed, schedule.base)
    with stages.console(osp.join(work_dir, 'base_vanilla')):
        start = run_stage(
            stages.cfg(base_cfg, f'seed {seed}: vanilla Faster R-CNN'),
            osp.join(work_dir, 'base_vanilla'),
            retrain_stale=retrain_stale)
    runs = {}
    for name, arm in arms.items():
        warmup = backbone_warmup_cfg(shapes_cfg(arm, data_root, seed, schedule.warmup))
        finetune = shapes_cfg(arm, data_root, seed, schedule.finetune)
        with stages.console(osp.join(work_dir, name)):
            final = run_two_stage([
                stages.cfg(warmup, f'seed {seed}: {name} backbone warm-up'),
                stages.cfg(finetune, f'seed {seed}: {name} fine-tune')
            ], osp.join(work_dir, name), start, retrain_stale)
            test = stages.cfg(
                shapes_cfg(arm, data_root, seed), f'seed {seed}: {name} COCO evaluation')
            runs[name] = DetectionRun(
                evaluate(test, final, osp.join(work_dir, name, 'test')), final)
    return runs


def say_done(start: float) -> None:
    """The closing line of a demo: how long it took since ``start`` (``time.time()``)."""
    minutes, seconds = divmod(int(time.time() - start), 60)
    print(f'done in {minutes} min {seconds} s')


def mean_sd(values: Sequence[float], fmt: str = '.3f') -> str:
    """``mean ± sd`` of ``values`` (the sample standard deviation), or the one value."""
    if not values:
        return '-'
    if len(values) == 1:
        return format(values[0], fmt)
    return f'{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}'
