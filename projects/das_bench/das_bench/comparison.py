"""DAS against the attention modules it competes with and the controls a reviewer asks for first
(equal capacity, longer training, another gate), all at the DAS placement (one module after the
last block of each ResNet stage), with one recipe and one cost accounting.

The accuracy protocol (:func:`accuracy_runs`), the same for every module and control:

1. the learning rate is chosen on val from one grid at a short schedule (seed = the first);
2. the epoch count is chosen on val from one grid at that rate (the convergence control: a
   model is compared at the length where its val top-1 stops improving, not at a length that
   flatters the faster one);
3. every seed trains at that rate and length and is scored once on the test split;
4. each module's seeds are paired with the plain network's (same seed: same data order and
   start) and the mean difference gets a 95 % t-interval (:func:`paired_interval`).

Every run is a stage of :func:`mmdas.engine.run_stage` in its own folder: rerunning reuses the
runs that finished under the same config and code and trains only the rest. Results go to one
JSON store per output folder (:class:`Store`); :mod:`das_bench.comparison_report` writes
the tables and plots from it.
"""
import glob
import json
import math
import os.path as osp
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config

from mmdas.datasets import shapes_cfg
from mmdas.engine import run_stage
from mmdas.models.backbones import plain_backbone_cfg
from .shapes import (CLS_CONFIGS, DET_CONFIGS, DetectionSchedule, Stages, ensure_shapes_data,
                     evaluate, train_and_test_detectors, vanilla_start)

#: Each compared backbone: a gate at the DAS placement (its config), the plain twin (None), a
#: backbone of its own (SDA-xNet), or the plain twin widened (the capacity control).
VARIANTS: Dict[str, Optional[dict]] = {
    'none': None,
    'DAS': dict(type='DASGate', alpha=0.2),
    # plain, every width x 17/16: the demo's ResNet-18 at width 17 has 792,833 parameters,
    # +4.1 % over DAS's 761,648 (a capacity control within 5 %)
    'wide': dict(width=17 / 16),
    'SE': dict(type='SEGate'),
    'CBAM': dict(type='CBAMGate'),
    'ECA': dict(type='ECAGate'),
    'Triplet': dict(type='TripletAttentionGate'),
    'CAT': dict(type='CATGate'),
    'DANet': dict(type='DANetGate'),
    'GC': dict(type='ContextBlock', ratio=1. / 16),
    'NonLocal': dict(type='NonLocal2d'),
    # not a gate: a backbone whose stages fuse their blocks (SDA-xNet), in place of the plain one
    'SDA': dict(backbone='SDAResNet'),
}
PAPERS = dict(
    none='plain ResNet',
    DAS='Salajegheh et al. 2023',
    wide='plain ResNet, widths x17/16 (the demo model\'s capacity control)',
    SE='Hu et al. CVPR 2018',
    CBAM='Woo et al. ECCV 2018',
    ECA='Wang et al. CVPR 2020',
    Triplet='Misra et al. WACV 2021',
    CAT='Wu et al. IET CV 2023 (our reading)',
    DANet='Fu et al. CVPR 2019',
    GC='Cao et al. 2019 (mmcv ContextBlock)',
    NonLocal='Wang et al. CVPR 2018 (mmcv NonLocal2d)',
    SDA='Guo et al. SDA-xNet (ResNet layout, SDAResNet)')


def with_variant(backbone: dict, name: str) -> dict:
    """``backbone`` (a gated backbone config) with the named module at the DAS placement; for
    'none' its plain twin (:func:`mmdas.models.backbones.plain_backbone_cfg`); for a
    backbone-level module (SDA) the plain twin's layout as that backbone; for 'wide' the plain
    twin with its stem and base widths scaled (the caller scales what reads them:
    :func:`variant_cfg`)."""
    if name not in VARIANTS:
        raise ValueError(f'name must be one of {tuple(VARIANTS)}, got {name!r}')
    variant = VARIANTS[name]
    if variant is None:
        return plain_backbone_cfg(backbone)
    if 'backbone' in variant:
        return dict(plain_backbone_cfg(backbone), type=variant['backbone'])
    if 'width' in variant:
        plain = plain_backbone_cfg(backbone)
        return dict(
            plain,
            stem_channels=_widened(plain.get('stem_channels', 64), variant['width']),
            base_channels=_widened(plain.get('base_channels', 64), variant['width']))
    return dict(backbone, gate=dict(variant))


def _widened(channels: int, factor: float) -> int:
    widened = channels * factor
    if widened != int(widened):
        raise ValueError(f'width x{factor:g} of {channels} channels is not a whole number')
    return int(widened)


def variant_cfg(path: str, name: str) -> Config:
    """The demo config at ``path`` (classifier or detector) with the named module in its
    backbone; for 'wide', the classifier's head or the detector's neck reads the wider maps."""
    cfg = Config.fromfile(path)
    cfg.model.backbone = with_variant(cfg.model.backbone, name)
    width = (VARIANTS[name] or {}).get('width')
    if width:
        if 'neck' in cfg.model and 'in_channels' in cfg.model.neck and \
                isinstance(cfg.model.neck.in_channels, (list, tuple)):
            cfg.model.neck.in_channels = [_widened(c, width) for c in cfg.model.neck.in_channels]
        else:
            cfg.model.head.in_channels = _widened(cfg.model.head.in_channels, width)
    return cfg


def backbone(name: str, depth: int = 50) -> torch.nn.Module:
    """mmdet's ResNet with the named module at the DAS placement, in eval mode."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model = MODELS.build(with_variant(dict(type='DASResNet', depth=depth), name))
    model.init_weights()
    model.eval()  # mmdet's ResNet.train() returns None: no chaining
    return model


def gate_module(name: str, channels: int = 256) -> torch.nn.Module:
    """The named gate alone (not for 'none', 'wide' or a backbone-level module)."""
    from mmengine.registry import MODELS
    return MODELS.build(dict(VARIANTS[name], in_channels=channels)).eval()


def is_gate(name: str) -> bool:
    """Whether ``name`` is a module that can run alone (:func:`gate_module`)."""
    variant = VARIANTS[name]
    return variant is not None and 'backbone' not in variant and 'width' not in variant


class Store:
    """One JSON file of results, merged section by section and saved at every update (an
    interrupted comparison keeps every finished run)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data: dict = {}
        if osp.isfile(path):
            with open(path) as f:
                self.data = json.load(f)

    def update(self, section: str, name: str, value: dict) -> None:
        """Merge ``value`` into ``section``/``name`` (nested dicts merged key by key) and record
        what measured it: the section's latest environment in ``meta``, and the sources, date and
        thread count in each module's ``measured_with`` (a section may hold modules measured
        apart)."""
        stored = self.data.setdefault(section, {}).setdefault(name, {})
        _merge(stored, value)
        from mmdas.engine.stage_record import code_fingerprint
        meta = dict(
            code_fingerprint(), threads=torch.get_num_threads(), date=time.strftime('%Y-%m-%d'))
        self.data.setdefault('meta', {})[section] = meta
        stored['measured_with'] = dict(
            sources=meta['mmdas_source_sha256'][:12], date=meta['date'], threads=meta['threads'])
        with open(self.path, 'w') as f:
            json.dump(self.data, f, indent=1, sort_keys=True)


def _merge(into: dict, value: dict) -> None:
    for key, v in value.items():
        if isinstance(v, dict) and isinstance(into.get(key), dict):
            _merge(into[key], v)
        else:
            into[key] = v


@dataclass(frozen=True)
class Protocol:
    """The accuracy protocol's grids (see the module's docstring)."""
    lr_grid: Tuple[float, ...]
    short_epochs: int
    epoch_grid: Tuple[int, ...]
    seeds: Tuple[int, ...]
    #: val top-1 every this many epochs, for the learning curves
    val_interval: int = 5

    def __post_init__(self) -> None:
        if not self.lr_grid or not self.epoch_grid or not self.seeds:
            raise ValueError('lr_grid, epoch_grid and seeds must each hold at least one value')
        if self.short_epochs not in self.epoch_grid:
            raise ValueError(f'short_epochs ({self.short_epochs}) must be in epoch_grid '
                             f'{self.epoch_grid}: its run at the chosen rate is the first point')
        for epochs in self.epoch_grid:
            if epochs % self.val_interval:
                raise ValueError(f'every epoch count must be a multiple of val_interval '
                                 f'({self.val_interval}), got {epochs}')


def run_dir(root: str, name: str, lr: float, epochs: int, seed: int) -> str:
    return osp.join(root, f'{name}_lr{lr:g}_ep{epochs}_seed{seed}')


def val_curve(work_dir: str) -> Dict[int, float]:
    """Val top-1 by epoch as training in ``work_dir`` logged it (mmengine's
    ``<timestamp>/vis_data/scalars.json``; a resumed run's logs merged, the later first)."""
    curve: Dict[int, float] = {}
    for scalars in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(scalars) as f:
            for line in f:
                row = json.loads(line)
                if 'accuracy/top1' in row:
                    curve[int(row['step'])] = float(row['accuracy/top1'])
    if not curve:
        raise FileNotFoundError(f'no val top-1 logged under {work_dir}/*/vis_data/scalars.json')
    return dict(sorted(curve.items()))


def accuracy_runs(name: str,
                  cfg: Config,
                  protocol: Protocol,
                  data_root: str,
                  root: str,
                  stages: Stages,
                  save: Callable[[dict], None],
                  retrain_stale: bool = False) -> None:
    """The protocol for one module (``cfg``: its classifier); ``save`` receives each result as
    it is measured."""
    first = protocol.seeds[0]
    trained: Dict[Tuple[float, int, int], Tuple[Config, str, str]] = {}

    def train(lr: float, epochs: int, seed: int, split: str) -> Tuple[float, str]:
        """Val or test top-1 of the run at ``lr``, ``epochs``, ``seed`` (trained once: the
        search's runs are the first points of the next steps)."""
        key = (lr, epochs, seed)
        title = f'{name}, lr {lr:g}, {epochs} epochs, seed {seed}'
        if key not in trained:
            run = shapes_cfg(cfg, data_root, seed, epochs)
            run.optim_wrapper.optimizer.lr = lr
            run.train_cfg.val_interval = protocol.val_interval
            work_dir = run_dir(root, name, lr, epochs, seed)
            with stages.console(work_dir):
                trained[key] = (run, work_dir,
                                run_stage(
                                    stages.cfg(run, title), work_dir, retrain_stale=retrain_stale))
        run, work_dir, checkpoint = trained[key]
        with stages.console(work_dir):
            metrics = evaluate(stages.again(run, f'{title}: {split}'), checkpoint, work_dir, split)
        return metrics['accuracy/top1'], work_dir

    t0 = time.time()
    val_by_lr = {lr: train(lr, protocol.short_epochs, first, 'val')[0] for lr in protocol.lr_grid}
    lr = max(protocol.lr_grid, key=lambda r: val_by_lr[r])  # the first of equals
    save(dict(lr=lr, val_top1_by_lr={f'{r:g}': v for r, v in val_by_lr.items()}))
    val_by_epochs, curves = {}, {}
    for epochs in protocol.epoch_grid:
        val_by_epochs[epochs], work_dir = train(lr, epochs, first, 'val')
        curves[str(epochs)] = {str(e): v for e, v in val_curve(work_dir).items()}
    epochs = max(protocol.epoch_grid, key=lambda e: val_by_epochs[e])  # the shortest of equals
    save(
        dict(
            epochs=epochs,
            val_top1_by_epochs={
                str(e): v
                for e, v in val_by_epochs.items()
            },
            val_curves=curves,
            search_seconds=time.time() - t0))
    for seed in protocol.seeds:
        t0 = time.time()
        top1, _ = train(lr, epochs, seed, 'test')
        save(dict(test_top1={str(seed): top1}, seconds={str(seed): time.time() - t0}))


GROWTH_SIZES = (14, 28, 42, 56, 84, 112)


def cost_section(names: Sequence[str], store: Store) -> None:
    """Parameters and multiply-adds of ResNet-50 at 224x224 with each module, every op
    counted (:func:`mmdas.analysis.analyze`), and of the classification demo's model (its
    parameters with the head; its backbone's multiply-adds at 64x64)."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from mmdas.analysis.complexity import analyze
    for name in names:
        c = analyze(backbone(name), torch.randn(1, 3, 224, 224))
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            demo = MODELS.build(variant_cfg(CLS_CONFIGS['das'], name).model).eval()
        demo_cost = analyze(demo.backbone, torch.randn(1, 3, 64, 64))
        store.update(
            'cost', name,
            dict(
                params=c.params,
                macs=c.macs,
                demo_params=sum(p.numel() for p in demo.parameters()),
                demo_macs=demo_cost.macs))


def latency_section(names: Sequence[str], rounds: int, store: Store) -> None:
    """CPU forward latency of those backbones, batch 1, alternating round by round with plain
    ResNet-50 in one run: medians and ratios."""
    from .timing import alternate, no_grad_forward
    x = torch.randn(1, 3, 224, 224)
    names = ['none'] + [n for n in names if n != 'none']
    models = {name: backbone(name) for name in names}
    med = alternate({name: no_grad_forward(m, x) for name, m in models.items()}, rounds)
    for name, t in med.items():
        store.update('latency', name, dict(ms=t * 1e3, ratio=t / med['none']))


def growth_section(names: Sequence[str], sizes: Sequence[int], rounds: int, store: Store) -> None:
    """Each gate alone (256 channels) at map sizes ``sizes``: latency against the number of
    pixels and the fitted exponent (1 linear, 2 quadratic)."""
    from .timing import growth_exponent, latency_by_size
    modules = {name: gate_module(name) for name in names if is_gate(name)}
    times = latency_by_size(modules, 256, tuple(sizes), max(1, rounds // 2))
    for name, ts in times.items():
        store.update(
            'growth', name,
            dict(sizes=list(sizes), ms=[t * 1e3 for t in ts], exponent=growth_exponent(sizes, ts)))


def accuracy_section(names: Sequence[str], protocol: Protocol, data_root: str, data_set: str,
                     out: str, store: Store) -> None:
    """:func:`accuracy_runs` for each named module on the classification demo's model."""
    ensure_shapes_data(data_set, data_root)
    short_runs = len(protocol.lr_grid) + len(protocol.epoch_grid) - 1
    stages = Stages(total=len(names) * (short_runs + len(protocol.seeds) - 1))
    for name in names:
        cfg = variant_cfg(CLS_CONFIGS['das'], name)
        accuracy_runs(
            name,
            cfg,
            protocol,
            data_root,
            osp.join(out, 'accuracy'),
            stages,
            lambda value, n=name: store.update('accuracy', n, value))
        store.update('accuracy', name, dict(data_set=data_set, protocol=protocol.__dict__))


#: The modules the detection section can insert into the shared plain detector (not a width
#: control: its other widths cannot load that detector).
DETECTION_VARIANTS = tuple(n for n, v in VARIANTS.items() if 'width' not in (v or {}))

#: The detection recipe's iterations in the comparison (longer than make demo's default).
DET_SCHEDULE = DetectionSchedule(pretrain=15, base=300, warmup=60, finetune=200)


def detection_section(names: Sequence[str], seeds: Sequence[int], det_data_root: str,
                      cls_data_root: str, out: str, store: Store) -> None:
    """Per seed: one pretrained backbone and one plain detector from it, then each module's
    backbone warm-up and fine-tune from that detector (equal iterations): test bbox AP."""
    unfit = [n for n in names if n not in DETECTION_VARIANTS]
    if unfit:
        raise ValueError(f'{unfit} cannot start from the shared plain detector (other widths); '
                         'the detection section takes the modules that insert into it: ' +
                         ', '.join(DETECTION_VARIANTS))
    ensure_shapes_data('detection', det_data_root)
    ensure_shapes_data('classification', cls_data_root)
    stages = Stages(total=len(seeds) * (2 + 3 * len(names)))
    arms = {name: variant_cfg(DET_CONFIGS['das'], name) for name in names}
    for seed in seeds:
        t0 = time.time()
        work_dir = osp.join(out, 'detection', f'seed{seed}')
        start = vanilla_start(
            variant_cfg(DET_CONFIGS['das'], 'none'), DET_SCHEDULE, (det_data_root, cls_data_root),
            seed, work_dir, stages)
        runs = train_and_test_detectors(arms, start, DET_SCHEDULE, det_data_root, seed, work_dir,
                                        stages)
        seconds = (time.time() - t0) / len(arms)
        for name, run in runs.items():
            store.update(
                'detection', name,
                dict(
                    bbox_mAP={str(seed): run.metrics['coco/bbox_mAP']},
                    seconds={str(seed): seconds},
                    schedule=DET_SCHEDULE.__dict__))


def paired_interval(differences: Sequence[float], confidence: float = 0.95) -> Tuple[float, float]:
    """Mean of paired ``differences`` and the half-width of its two-sided t-interval (NaN for
    one difference)."""
    from scipy import stats
    if not differences:
        raise ValueError('differences must hold at least one value')
    mean = statistics.mean(differences)
    if len(differences) < 2:
        return mean, math.nan
    sem = statistics.stdev(differences) / math.sqrt(len(differences))
    return mean, float(stats.t.ppf(0.5 + confidence / 2, len(differences) - 1)) * sem


def paired_with(runs: Dict[str, float], reference: Dict[str, float]) -> List[float]:
    """``runs - reference`` for each seed both have, in seed order."""
    return [runs[s] - reference[s] for s in sorted(runs, key=int) if s in reference]


__all__ = [
    'VARIANTS', 'PAPERS', 'DET_SCHEDULE', 'GROWTH_SIZES', 'Protocol', 'Store', 'accuracy_runs',
    'accuracy_section', 'backbone', 'cost_section', 'detection_section', 'growth_section',
    'latency_section', 'gate_module', 'is_gate', 'paired_interval', 'paired_with', 'run_dir',
    'val_curve', 'variant_cfg', 'with_variant'
]
