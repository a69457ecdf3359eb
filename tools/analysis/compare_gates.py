"""Compare DAS with the attention modules it competes with, all at the DAS placement (one module
after the last block of each ResNet stage), with one recipe and one cost accounting.

    python tools/analysis/compare_gates.py [--sections cost latency growth accuracy detection]
        [--gates none DAS SE ...] [--seeds 0 1 2] [--rounds 7] [--out work_dirs/compare_gates]

Sections (each merged into OUT/compare_gates.json, so they can be run apart):
  cost       parameters and multiply-adds of ResNet-50 at 224x224 with each module, every op
             counted (mmdas.analysis: deformable conv, reductions, softmax included)
  latency    CPU forward latency of those backbones at 224x224, batch 1, against plain ResNet-50:
             one run, the variants alternating round by round, medians and ratios
  growth     each module alone (256 channels) at map sizes 14 to 112 px: latency against the
             number of pixels, fitted exponent (1 = linear, 2 = quadratic)
  accuracy   the classification demo (quarter-width ResNet-18, synthetic shapes, 15 epochs)
             trained from scratch with each module and with none: each one's learning rate
             chosen on val from the same grid (--lr-grid, seed = the first of --seeds), then
             test top-1 once per seed at that rate
  detection  the detection demo's recipe (quarter-width ResNet-18 Faster R-CNN): per seed one
             pretrained backbone and one plain detector from it, then each module's backbone
             warm-up and fine-tune from that detector: COCO bbox AP on the test split
Writes OUT/compare_gates.md (the table) and OUT/compare_gates.png, and prints the table.
The accuracy and detection figures are demo-scale: small synthetic sets, small models.
"""
import argparse
import json
import logging
import os
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

import mmdas  # noqa: F401
from mmdas.analysis import analyze
from mmdas.analysis.timing import alternate, growth_exponent, latency_by_size, no_grad_forward
from mmdas.demos import (CLS_CONFIGS, CLS_LR_GRID, DET_CONFIGS, DetectionSchedule, Stages,
                         ensure_shapes_data, lr_work_dir, mean_sd, search_lr, shapes_cfg,
                         train_and_test, train_and_test_detectors)
from mmdas.models.backbones import plain_backbone_cfg

Save = Callable[[dict], None]

VARIANTS: Dict[str, Optional[dict]] = {
    'none': None,
    'DAS': dict(type='DASGate', alpha=0.2),
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
    SE='Hu et al. CVPR 2018',
    CBAM='Woo et al. ECCV 2018',
    ECA='Wang et al. CVPR 2020',
    Triplet='Misra et al. WACV 2021',
    CAT='Wu et al. IET CV 2023 (our reading)',
    DANet='Fu et al. CVPR 2019',
    GC='Cao et al. 2019 (mmcv ContextBlock)',
    NonLocal='Wang et al. CVPR 2018 (mmcv NonLocal2d)',
    SDA='Guo et al. SDA-xNet (ResNet layout, SDAResNet)')
GROWTH_SIZES = (14, 28, 42, 56, 84, 112)
#: The detection recipe's iterations in the comparison (longer than make demo's default).
DET_SCHEDULE = DetectionSchedule(pretrain=15, base=300, warmup=60, finetune=200)


def with_gate(backbone: dict, name: str) -> dict:
    """A gated backbone config with the named module at the DAS placement; for 'none', its
    plain twin (:func:`mmdas.models.backbones.plain_backbone_cfg`); for a backbone-level
    module (SDA), the plain twin's layout as that backbone."""
    if VARIANTS[name] is None:
        return plain_backbone_cfg(backbone)
    if 'backbone' in VARIANTS[name]:
        return dict(plain_backbone_cfg(backbone), type=VARIANTS[name]['backbone'])
    return dict(backbone, gate=dict(VARIANTS[name]))


def backbone(name: str, depth: int = 50) -> torch.nn.Module:
    """mmdet's ResNet with the named module at the DAS placement, in eval mode."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model = MODELS.build(with_gate(dict(type='DASResNet', depth=depth), name))
    model.init_weights()
    model.eval()  # mmdet's ResNet.train() returns None: no chaining
    return model


def variant_cfg(path: str, name: str) -> Config:
    """The demo config at ``path`` with the named module in its backbone."""
    cfg = Config.fromfile(path)
    cfg.model.backbone = with_gate(cfg.model.backbone, name)
    return cfg


def gate_module(name: str, channels: int = 256) -> torch.nn.Module:
    from mmengine.registry import MODELS
    return MODELS.build(dict(VARIANTS[name], in_channels=channels)).eval()


def cost_section(args, save: Save) -> None:
    out = {}
    for name in args.gates:
        c = analyze(backbone(name), torch.randn(1, 3, 224, 224))
        out[name] = dict(params=c.params, macs=c.macs)
    save(out)


def latency_section(args, save: Save) -> None:
    x = torch.randn(1, 3, 224, 224)
    names = ['none'] + [n for n in args.gates if n != 'none']
    models = {name: backbone(name) for name in names}
    med = alternate({name: no_grad_forward(m, x) for name, m in models.items()}, args.rounds)
    save({name: dict(ms=t * 1e3, ratio=t / med['none']) for name, t in med.items()})


def growth_section(args, save: Save) -> None:
    modules = {
        name: gate_module(name)
        for name in args.gates if VARIANTS[name] is not None and 'backbone' not in VARIANTS[name]
    }
    sizes = tuple(args.growth_sizes)
    times = latency_by_size(modules, 256, sizes, max(1, args.rounds // 2))
    save({
        name:
        dict(sizes=list(sizes), ms=[t * 1e3 for t in ts], exponent=growth_exponent(sizes, ts))
        for name, ts in times.items()
    })


def accuracy_section(args, save: Save) -> None:
    """The classification demo with each module: its learning rate chosen on val (the first
    seed, every module the same grid), then test top-1 once per seed at that rate."""
    ensure_shapes_data('classification', args.data_root)
    first, rest = args.seeds[0], args.seeds[1:]
    stages = Stages(total=len(args.gates) * (len(args.lr_grid) + len(rest)))
    root = osp.join(args.out, 'accuracy')
    for name in args.gates:
        t0 = time.time()
        cfg = shapes_cfg(variant_cfg(CLS_CONFIGS['das'], name), args.data_root, first, args.epochs)
        search = search_lr(cfg, args.lr_grid, name, root, stages)
        # saved run by run: an interrupted comparison keeps every finished one
        save({
            name: {
                str(first):
                dict(
                    top1=search.test_top1,
                    lr=search.best_lr,
                    val_top1_by_lr={
                        f'{lr:g}': v
                        for lr, v in search.val_top1.items()
                    },
                    seconds=(time.time() - t0) / len(args.lr_grid))
            }
        })
        for seed in rest:
            t0 = time.time()
            cfg = shapes_cfg(
                variant_cfg(CLS_CONFIGS['das'], name), args.data_root, seed, args.epochs)
            cfg.optim_wrapper.optimizer.lr = search.best_lr
            metrics = train_and_test(cfg, lr_work_dir(root, name, search.best_lr, seed), stages,
                                     f'{name}, lr {search.best_lr:g}, seed {seed}')
            save({
                name: {
                    str(seed):
                    dict(
                        top1=metrics['accuracy/top1'], lr=search.best_lr, seconds=time.time() - t0)
                }
            })


def detection_section(args, save: Save) -> None:
    """Per seed: one plain detector, then each module's two-stage schedule from it."""
    ensure_shapes_data('detection', args.det_data_root)
    ensure_shapes_data('classification', args.data_root)
    stages = Stages(total=len(args.seeds) * (2 + 3 * len(args.gates)))
    arms = {name: variant_cfg(DET_CONFIGS['das'], name) for name in args.gates}
    for seed in args.seeds:
        t0 = time.time()
        runs = train_and_test_detectors(arms, variant_cfg(DET_CONFIGS['das'], 'none'), DET_SCHEDULE,
                                        (args.det_data_root, args.data_root), seed,
                                        osp.join(args.out, 'detection', f'seed{seed}'), stages)
        seconds = (time.time() - t0) / len(arms)
        save({
            name: {
                str(seed): dict(bbox_mAP=run.metrics['coco/bbox_mAP'], seconds=seconds)
            }
            for name, run in runs.items()
        })


#: The sections, in the order they run; each takes the parsed arguments and a ``save``.
SECTIONS: Dict[str, Callable[..., None]] = dict(
    cost=cost_section,
    latency=latency_section,
    growth=growth_section,
    accuracy=accuracy_section,
    detection=detection_section)
PER_SEED = ('accuracy', 'detection')


def mean_spread(values: List[float]) -> str:
    if not values:
        return '-'
    if len(values) == 1:
        return f'{values[0]:.3g} (1 seed)'
    return (f'{mean_sd(values, ".3g")} (n={len(values)}, {min(values):.3g}-{max(values):.3g})')


def accuracy_cell(runs: dict) -> str:
    """Test top-1 over the seeds, and the learning rate they trained at."""
    if not runs:
        return '-'
    rates = sorted({r['lr'] for r in runs.values()})
    return f"{mean_spread([r['top1'] for r in runs.values()])} at lr " + \
        '/'.join(f'{lr:g}' for lr in rates)


def table(data: dict, names: List[str]) -> str:
    cost, latency = data.get('cost', {}), data.get('latency', {})
    growth, acc, det = data.get('growth', {}), data.get('accuracy', {}), data.get('detection', {})
    plain = cost.get('none')
    rows = [
        '| module | paper | params | MACs | added params / MACs | latency 224 b1 '
        '(ratio to ResNet-50) | growth exponent | demo test top-1 % (lr chosen on val) | '
        'demo test bbox AP |', '|---|---|---|---|---|---|---|---|---|'
    ]
    for name in names:
        c, lat = cost.get(name), latency.get(name)
        added = (f'+{(c["params"] - plain["params"]) / 1e6:.2f} M / '
                 f'+{(c["macs"] - plain["macs"]) / 1e9:.2f} G') if c and plain else '-'
        rows.append(' | '.join([
            f'| {name}', PAPERS[name], f'{c["params"] / 1e6:.2f} M' if c else '-',
            f'{c["macs"] / 1e9:.2f} G' if c else '-', added,
            f'{lat["ms"]:.1f} ms ({lat["ratio"]:.2f}x)' if lat else '-',
            f'{growth[name]["exponent"]:.2f}' if name in growth else '-',
            accuracy_cell(acc.get(name, {})),
            mean_spread([r['bbox_mAP'] for r in det.get(name, {}).values()])
        ]) + ' |')
    return '\n'.join(rows)


def plot(data: dict, names: List[str], path: str) -> None:
    """Latency against map size (left) and demo top-1 per module (right), one colour each."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    colours = dict(zip(VARIANTS, plt.get_cmap('tab20').colors))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    for name in names:
        g = data.get('growth', {}).get(name)
        if g:
            left.loglog([s * s for s in g['sizes']],
                        g['ms'],
                        'o-',
                        ms=3,
                        color=colours[name],
                        label=f'{name} (k={g["exponent"]:.2f})')
    left.set(
        xlabel='pixels of the map (H x W), 256 channels',
        ylabel='forward latency (ms)',
        title='Latency against map size (CPU; k: fitted exponent)')
    left.legend(fontsize=7)
    left.grid(True, which='both', alpha=0.3)
    cost, acc = data.get('cost', {}), data.get('accuracy', {})
    plain = cost.get('none', {}).get('macs')
    rows = [(name, [r['top1'] for r in acc[name].values()]) for name in names if acc.get(name)]
    rows.sort(key=lambda row: statistics.mean(row[1]))
    for i, (name, runs) in enumerate(rows):
        spread = statistics.stdev(runs) if len(runs) > 1 else 0
        right.barh(i, statistics.mean(runs), xerr=spread, color=colours[name], capsize=3)
        right.plot(runs, [i] * len(runs), 'k.', ms=4)
    labels = []
    for name, _ in rows:
        added = cost.get(name, {}).get('macs')
        labels.append(
            name if added is None or plain is None else f'{name} (+{(added - plain) / 1e9:.2f} G)')
    right.set_yticks(range(len(rows)), labels, fontsize=8)
    seeds = max((len(runs) for _, runs in rows), default=0)
    right.set(
        xlabel=f'test top-1 % (bar: mean ± sd, dots: the {seeds} seeds; lr chosen on val)',
        ylabel='module (+ added GMACs, ResNet-50 at 224x224)',
        title='Demo-scale accuracy')
    right.grid(True, axis='x', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--sections',
        nargs='+',
        default=['cost', 'latency', 'growth', 'accuracy'],
        choices=list(SECTIONS))
    parser.add_argument('--gates', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--epochs', type=int, default=15, help='classification demo epochs')
    parser.add_argument(
        '--lr-grid',
        nargs='+',
        type=float,
        default=list(CLS_LR_GRID),
        help='learning rates every module is tried with (accuracy section)')
    parser.add_argument('--growth-sizes', nargs='+', type=int, default=list(GROWTH_SIZES))
    parser.add_argument('--data-root', default='data/shapes_cls')
    parser.add_argument('--det-data-root', default='data/shapes')
    parser.add_argument('--out', default='work_dirs/compare_gates')
    args = parser.parse_args()
    # mmengine logs every initialised tensor at INFO level; keep the console to the results.
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    os.makedirs(args.out, exist_ok=True)
    store = osp.join(args.out, 'compare_gates.json')
    data = json.load(open(store)) if osp.isfile(store) else {}
    start = time.time()

    def saver(section: str) -> Save:

        def save(result: dict) -> None:
            """Merge ``result`` into the store (per module, and per seed where trained)."""
            stored = data.setdefault(section, {})
            for name, value in result.items():
                if section in PER_SEED:
                    stored.setdefault(name, {}).update(value)
                else:
                    stored[name] = value
            data.setdefault('meta', {})[section] = dict(
                torch=torch.__version__,
                threads=torch.get_num_threads(),
                date=time.strftime('%Y-%m-%d'))
            with open(store, 'w') as f:
                json.dump(data, f, indent=1)

        return save

    for section in args.sections:
        print(f'== {section}', flush=True)
        SECTIONS[section](args, saver(section))
    names = [n for n in VARIANTS if any(n in data.get(s, {}) for s in data if s != 'meta')]
    text = table(data, names)
    with open(osp.join(args.out, 'compare_gates.md'), 'w') as f:
        f.write(text + '\n')
    plot(data, names, osp.join(args.out, 'compare_gates.png'))
    print(text)
    print(f'\n{args.out}/compare_gates.md, compare_gates.png ({time.time() - start:.0f} s)')


if __name__ == '__main__':
    sys.exit(main())
