"""The demos on synthetic shapes, in one place: configs pointed at their data
(:func:`mmdas.datasets.shapes_cfg`), trained and evaluated per task (:func:`train_and_test`, a
learning rate chosen on val by :func:`search_lr`, the detection recipe from a pretrained
backbone :func:`train_and_test_detectors`), shown quietly stage by stage (:class:`Stages`), and
seeds summarised (:func:`mean_sd`, :func:`paired_differences`). The project's tools and tests
all go through these functions.
"""
import contextlib
import copy
import os
import os.path as osp
import statistics
import time
from dataclasses import dataclass
from functools import partial
from typing import ContextManager, Dict, Sequence, Tuple, Union

from mmengine.config import Config

from mmdas.datasets import make_shapes_coco, make_shapes_folder, read_manifest, shapes_cfg
from mmdas.datasets.synthetic_shapes import GENERATOR_VERSION
from mmdas.engine import (backbone_warmup_cfg, build_runner, quiet_cfg, quiet_console, run_stage,
                          run_two_stage)
from mmdas.models.backbones.pretrained import load_checked

#: The classification demo's DAS model and its plain twin.
CLS_CONFIGS = dict(
    das='configs/mmpretrain/demo/das-resnet18-w16_shapes-cls.py',
    plain='configs/mmpretrain/demo/resnet18-w16_shapes-cls.py')
#: The detection demo's DAS detector and its vanilla twin.
DET_CONFIGS = dict(
    das='configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py',
    vanilla='configs/das/demo/faster-rcnn_r18-w16_fpn_shapes.py')
#: The classifier whose backbone starts every demo detector (the ImageNet stand-in): the
#: classification demo's plain ResNet-18 at a quarter width, the detectors' backbone exactly.
PRETRAIN_CONFIG = CLS_CONFIGS['plain']
#: The learning rates every classification-demo model is tried with (AdamW, the demo's
#: optimizer); each model's own best on val is written in its config (make tune-cls).
CLS_LR_GRID = (5e-4, 1e-3, 2e-3, 4e-3, 8e-3)

#: The harder classification set of the controls and ``make compare`` (``data/shapes_cls_hard``):
#: the demo's shapes at 25-50 % of the side (not 30-70 %) over two outlines of random shapes.
#: Fixed on the plain network alone, before any gated model ran on it: its val top-1 after 60
#: epochs at its better rate had to land between 80 and 90 % (the demo's set gives it 97.75 %,
#: too easy to tell modules apart at convergence); it gives 88.5 % (docs/comparison.md has the
#: calibration runs).
HARD_CLS = dict(object_scale=(0.25, 0.5), distractors=2)
MAKERS = {
    'detection': make_shapes_coco,
    'classification': make_shapes_folder,
    'classification-hard': partial(make_shapes_folder, name='classification-hard', **HARD_CLS)
}


def ensure_shapes_data(task: str, data_root: str) -> None:
    """Write the synthetic set ``task`` (one of :data:`MAKERS`) to ``data_root``
    unless this generator already wrote it there (its ``shapes.json``); a folder holding
    anything else (an older generator's set, another task's) stops with what to do."""
    if task not in MAKERS:
        raise ValueError(f'task must be one of {tuple(MAKERS)}, got {task!r}')
    manifest = read_manifest(data_root)
    if manifest is not None and (manifest.get('generator'),
                                 manifest.get('task')) == (GENERATOR_VERSION, task):
        return
    if osp.isdir(data_root) and os.listdir(data_root):
        what = 'no shapes.json (an older generator, or not a shapes set)' if manifest is None \
            else f"generator {manifest.get('generator')}, task {manifest.get('task')!r}"
        raise RuntimeError(
            f'{data_root} holds another data set ({what}); this demo needs the {task} set of '
            f'generator {GENERATOR_VERSION} (train/val/test splits, visible-pixel '
            f'annotations). Remove the folder (rm -r {data_root}) to have it written, or pass '
            'another --data-root.')
    print(f'writing the synthetic {task} shapes set to {data_root}')
    MAKERS[task](data_root)


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


def evaluate(cfg: Config, checkpoint: str, work_dir: str, split: str = 'test') -> Dict[str, float]:
    """The metrics of ``checkpoint`` on the ``split`` ('test' or 'val') of ``cfg`` (mmengine's
    test or val loop and the config's evaluator: pycocotools for detection, top-1 for
    classification)."""
    if split not in ('test', 'val'):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    cfg = copy.deepcopy(cfg)
    cfg.work_dir, cfg.load_from = osp.join(work_dir, split), checkpoint
    runner = build_runner(cfg)
    return runner.test() if split == 'test' else runner.val()


def train_and_test(cfg: Config,
                   work_dir: str,
                   stages: Stages,
                   title: str,
                   retrain_stale: bool = False) -> Dict[str, float]:
    """Train ``cfg`` in ``work_dir`` (reused if the same stage finished there, see
    :func:`mmdas.engine.run_stage`), then evaluate its final checkpoint on the test split."""
    with stages.console(work_dir):
        checkpoint = run_stage(stages.cfg(cfg, title), work_dir, retrain_stale=retrain_stale)
        return evaluate(stages.again(cfg, title), checkpoint, work_dir)


def lr_work_dir(root: str, name: str, lr: float, seed: int) -> str:
    """Where model ``name`` trains at ``lr`` with ``seed`` (shared by the search and the runs
    after it, so the search's run at the chosen rate is reused, not repeated)."""
    return osp.join(root, f'{name}_lr{lr:g}_seed{seed}')


@dataclass
class LrSearch:
    """Val top-1 per learning rate, the best of them (the first of equals in grid order), and
    the test top-1 at the best."""
    val_top1: Dict[float, float]
    best_lr: float
    test_top1: float


def search_lr(cfg: Config,
              grid: Sequence[float],
              name: str,
              work_root: str,
              stages: Stages,
              retrain_stale: bool = False) -> LrSearch:
    """Train ``cfg`` (already pointed at its data and seeded, see :func:`shapes_cfg`) once per
    learning rate of ``grid``; choose on the val split, report the test split at the choice."""
    if not grid:
        raise ValueError('grid must hold at least one learning rate')
    seed = cfg.randomness.seed
    val_top1, checkpoints = {}, {}
    for lr in grid:
        trial = copy.deepcopy(cfg)
        trial.optim_wrapper.optimizer.lr = lr
        work_dir = lr_work_dir(work_root, name, lr, seed)
        title = f'{name}, lr {lr:g}, seed {seed}'
        with stages.console(work_dir):
            checkpoints[lr] = run_stage(
                stages.cfg(trial, title), work_dir, retrain_stale=retrain_stale)
            val_top1[lr] = evaluate(stages.again(trial, title), checkpoints[lr], work_dir,
                                    'val')['accuracy/top1']
    best = max(grid, key=lambda lr: val_top1[lr])  # max keeps the first of equals
    trial = copy.deepcopy(cfg)
    trial.optim_wrapper.optimizer.lr = best
    work_dir = lr_work_dir(work_root, name, best, seed)
    with stages.console(work_dir):
        test = evaluate(
            stages.again(trial, f'{name}, lr {best:g}: test'), checkpoints[best], work_dir)
    return LrSearch(val_top1, best, test['accuracy/top1'])


@dataclass(frozen=True)
class DetectionSchedule:
    """Length of each stage of the detection recipe: the backbone's classification pretraining
    (epochs), the vanilla detector the warm-up starts from, then each arm's backbone warm-up
    and fine-tune (iterations)."""
    pretrain: int
    base: int
    warmup: int
    finetune: int

    def name(self) -> str:
        return f'pretrain-{self.pretrain}ep_iters-{self.base}-{self.warmup}-{self.finetune}'


@dataclass
class DetectionRun:
    metrics: Dict[str, float]
    checkpoint: str


def from_pretrained(cfg: Config, checkpoint: str) -> Config:
    """``cfg`` with its backbone initialised from the classifier ``checkpoint`` (mmengine's
    ``Pretrained`` init, prefix ``backbone.``), after checking that the file fits: every tensor
    of the backbone's host architecture must be in it with its shape (gate tensors of a gated
    backbone may be missing), else a ValueError names what does not fit."""
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    cfg = copy.deepcopy(cfg)
    init_cfg = dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
    cfg.model.backbone.init_cfg = init_cfg
    with DefaultScope.overwrite_default_scope('mmdet'):
        backbone = MODELS.build(cfg.model.backbone)
    load_checked(
        backbone,
        init_cfg,
        may_be_missing=getattr(backbone, 'is_gate_key', lambda key: False),
        convert=getattr(backbone, 'convert_pretrained', lambda state: state))
    return cfg


def vanilla_start(base: Union[str, Config],
                  schedule: DetectionSchedule,
                  data_roots: Tuple[str, str],
                  seed: int,
                  work_dir: str,
                  stages: Stages,
                  retrain_stale: bool = False) -> str:
    """The start every arm of the paper's detection recipe shares (demo scale): a plain
    classifier (:data:`PRETRAIN_CONFIG`, the ImageNet stand-in) trained ``schedule.pretrain``
    epochs on the classification set (``data_roots[1]``), whose backbone starts a vanilla
    detector (``base``, checked ``Pretrained`` loading) trained ``schedule.base`` iterations on
    the detection set (``data_roots[0]``). Returns that detector's checkpoint."""
    det_root, cls_root = data_roots
    pretrain_dir = osp.join(work_dir, 'pretrain_classifier')
    with stages.console(pretrain_dir):
        classifier = run_stage(
            stages.cfg(
                shapes_cfg(PRETRAIN_CONFIG, cls_root, seed, schedule.pretrain),
                f'seed {seed}: pretrain the backbone (plain classifier)'),
            pretrain_dir,
            retrain_stale=retrain_stale)
    with stages.console(osp.join(work_dir, 'base_vanilla')):
        base_cfg = from_pretrained(shapes_cfg(base, det_root, seed, schedule.base), classifier)
        return run_stage(
            stages.cfg(base_cfg, f'seed {seed}: vanilla Faster R-CNN from it'),
            osp.join(work_dir, 'base_vanilla'),
            retrain_stale=retrain_stale)


def train_and_test_detectors(arms: Dict[str, Union[str, Config]],
                             start: str,
                             schedule: DetectionSchedule,
                             det_root: str,
                             seed: int,
                             work_dir: str,
                             stages: Stages,
                             retrain_stale: bool = False) -> Dict[str, DetectionRun]:
    """Each arm of the paper's detection recipe from one trained vanilla detector ``start``
    (:func:`vanilla_start`): its own fresh gates inserted, the backbone warm-up against the
    trained heads (``schedule.warmup`` iterations), then the fine-tune (``schedule.finetune``),
    evaluated on the test split of ``det_root`` with pycocotools. Every arm gets the same
    start, iterations and images."""
    runs = {}
    for name, arm in arms.items():
        warmup = backbone_warmup_cfg(shapes_cfg(arm, det_root, seed, schedule.warmup))
        finetune = shapes_cfg(arm, det_root, seed, schedule.finetune)
        with stages.console(osp.join(work_dir, name)):
            final = run_two_stage([
                stages.cfg(warmup, f'seed {seed}: {name} backbone warm-up'),
                stages.cfg(finetune, f'seed {seed}: {name} fine-tune')
            ], osp.join(work_dir, name), start, retrain_stale)
            test = stages.cfg(
                shapes_cfg(arm, det_root, seed), f'seed {seed}: {name} COCO evaluation (test)')
            runs[name] = DetectionRun(evaluate(test, final, osp.join(work_dir, name)), final)
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
    spread = format(statistics.stdev(values), fmt.lstrip('+'))  # a sign on the mean only
    return f'{format(statistics.mean(values), fmt)} ± {spread}'


def paired_differences(first: Dict[int, float], second: Dict[int, float]) -> Dict[int, float]:
    """``first - second`` per seed, for the seeds both have (a paired comparison: each seed's
    two runs share data, order and start)."""
    return {seed: first[seed] - second[seed] for seed in first if seed in second}
