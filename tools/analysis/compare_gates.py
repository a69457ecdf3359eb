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
             trained from scratch with each module and with none, once per seed: val top-1
  detection  the detection demo (quarter-width ResNet-18 Faster R-CNN): from one trained plain
             detector per seed, each module's backbone warm-up then fine-tune: COCO bbox AP
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

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

import mmdas  # noqa: F401
from mmdas.analysis import analyze
from mmdas.analysis.timing import alternate, no_grad_forward

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
    NonLocal='Wang et al. CVPR 2018 (mmcv NonLocal2d)')
CLS_DEMO = 'configs/mmpretrain/demo/das-resnet18-w16_shapes-cls.py'
DET_DEMO = 'configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py'
GROWTH_SIZES = (14, 28, 42, 56, 84, 112)


def backbone(name: str, depth: int = 50):
    """ResNet with the named module at the DAS placement (plain ResNet for 'none')."""
    from mmdet.models.backbones import ResNet

    from mmdas.models import DASResNet
    model = ResNet(depth) if VARIANTS[name] is None else DASResNet(depth, gate=VARIANTS[name])
    model.init_weights()
    model.eval()  # mmdet's ResNet.train() returns None: no chaining
    return model


def gate_module(name: str, channels: int = 256) -> torch.nn.Module:
    from mmengine.registry import MODELS
    return MODELS.build(dict(VARIANTS[name], in_channels=channels)).eval()


def cost_section(names: List[str]) -> dict:
    out = {}
    for name in names:
        c = analyze(backbone(name), torch.randn(1, 3, 224, 224))
        out[name] = dict(params=c.params, macs=c.macs)
    return out


def latency_section(names: List[str], rounds: int) -> dict:
    x = torch.randn(1, 3, 224, 224)
    models = {name: backbone(name) for name in ['none'] + [n for n in names if n != 'none']}
    med = alternate({name: no_grad_forward(m, x) for name, m in models.items()}, rounds)
    return {name: dict(ms=t * 1e3, ratio=t / med['none']) for name, t in med.items()}


def growth_section(names: List[str], rounds: int, sizes=GROWTH_SIZES) -> dict:
    modules = {name: gate_module(name) for name in names if name != 'none'}
    times = {name: [] for name in modules}
    for size in sizes:
        x = torch.randn(1, 256, size, size)
        med = alternate({n: no_grad_forward(m, x) for n, m in modules.items()}, rounds)
        for name in modules:
            times[name].append(med[name])
    pixels = np.array([s * s for s in sizes], float)
    fit = slice(len(sizes) // 3, None)  # the larger sizes: fixed per-call costs matter less
    return {
        name:
        dict(
            sizes=list(sizes),
            ms=[t * 1e3 for t in ts],
            exponent=float(np.polyfit(np.log(pixels[fit]),
                                      np.log(ts)[fit], 1)[0]))
        for name, ts in times.items()
    }


def _variant_backbone_cfg(cfg: Config, name: str) -> None:
    if VARIANTS[name] is None:
        cfg.model.backbone.gate_stages = (False, ) * 4
    else:
        cfg.model.backbone.gate = dict(VARIANTS[name])


def accuracy_section(names: List[str], seeds: List[int], work_dir: str, epochs: int, data_root: str,
                     save: Callable[[dict], None]) -> dict:
    from mmdas.datasets import make_shapes_folder
    from mmdas.engine import build_runner, quiet_cfg, quiet_console
    if not osp.isdir(osp.join(data_root, 'val')):
        make_shapes_folder(data_root)
    results = {name: {} for name in names}
    runs = [(name, seed) for seed in seeds for name in names]
    for i, (name, seed) in enumerate(runs, 1):
        cfg = Config.fromfile(CLS_DEMO)
        _variant_backbone_cfg(cfg, name)
        for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
            loader.dataset.data_root = data_root
        cfg.train_cfg.update(max_epochs=epochs, val_interval=epochs)
        cfg.param_scheduler.update(T_max=epochs, end=epochs)
        cfg.default_hooks.checkpoint.interval = epochs
        cfg.randomness = dict(seed=seed)
        cfg.work_dir = osp.join(work_dir, 'accuracy', f'{name}_seed{seed}')
        os.makedirs(cfg.work_dir, exist_ok=True)
        t0 = time.time()
        with quiet_console(osp.join(cfg.work_dir, 'console.log')):
            runner = build_runner(quiet_cfg(cfg, f'[{i}/{len(runs)}] {name}, seed {seed}'))
            runner.train()
            top1 = runner.test()['accuracy/top1']
        results[name][str(seed)] = dict(top1=top1, seconds=time.time() - t0)
        save(results)  # an interrupted comparison keeps every finished run
    return results


def detection_section(names: List[str], seeds: List[int], work_dir: str, data_root: str,
                      save: Callable[[dict], None]) -> dict:
    """Per seed: one plain detector, then each module's two-stage schedule from it."""
    from mmdas.datasets import make_shapes_coco
    from mmdas.engine import (backbone_warmup_cfg, build_runner, quiet_cfg, quiet_console,
                              run_stage, run_two_stage, shapes_demo_cfg)
    if not osp.isfile(osp.join(data_root, 'annotations', 'instances_val.json')):
        make_shapes_coco(data_root)

    def demo_cfg(name: str, seed: int, iters: int, title: str) -> Config:
        cfg = Config.fromfile(DET_DEMO)
        _variant_backbone_cfg(cfg, name)
        return quiet_cfg(shapes_demo_cfg(cfg, data_root, seed, iters), title)

    results = {name: {} for name in names}
    for seed in seeds:
        root = osp.join(work_dir, 'detection', f'seed{seed}')
        os.makedirs(root, exist_ok=True)
        with quiet_console(osp.join(root, 'console.log')):
            base = run_stage(
                demo_cfg('none', seed, 300, f'seed {seed}: plain detector'), osp.join(root, 'base'))
            for name in names:
                t0 = time.time()
                warmup = backbone_warmup_cfg(
                    demo_cfg(name, seed, 60, f'seed {seed}: {name} warm-up'))
                finetune = demo_cfg(name, seed, 200, f'seed {seed}: {name} fine-tune')
                final = run_two_stage([warmup, finetune], osp.join(root, name), base)
                test = demo_cfg(name, seed, 200, f'seed {seed}: {name} test')
                test.work_dir, test.load_from = osp.join(root, name, 'test'), final
                metrics = build_runner(test).test()
                results[name][str(seed)] = dict(
                    bbox_mAP=metrics['coco/bbox_mAP'], seconds=time.time() - t0)
                save(results)
    return results


def mean_spread(values: List[float]) -> str:
    if not values:
        return '-'
    if len(values) == 1:
        return f'{values[0]:.3g} (1 seed)'
    return (f'{statistics.mean(values):.3g} ± {statistics.stdev(values):.2g} '
            f'(n={len(values)}, {min(values):.3g}-{max(values):.3g})')


def table(data: dict, names: List[str]) -> str:
    cost, latency = data.get('cost', {}), data.get('latency', {})
    growth, acc, det = data.get('growth', {}), data.get('accuracy', {}), data.get('detection', {})
    plain = cost.get('none')
    rows = [
        '| module | paper | params | MACs | added params / MACs | latency 224 b1 '
        '(ratio to ResNet-50) | growth exponent | demo top-1 % | demo bbox AP |',
        '|---|---|---|---|---|---|---|---|---|'
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
            mean_spread([r['top1'] for r in acc.get(name, {}).values()]),
            mean_spread([r['bbox_mAP'] for r in det.get(name, {}).values()])
        ]) + ' |')
    return '\n'.join(rows)


def plot(data: dict, names: List[str], path: str) -> None:
    """Latency against map size (left) and demo top-1 per module (right), one colour each."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    colours = dict(zip(VARIANTS, plt.get_cmap('tab10').colors))
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
        xlabel=f'val top-1 % (bar: mean ± sd, dots: the {seeds} seeds)',
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
        choices=['cost', 'latency', 'growth', 'accuracy', 'detection'])
    parser.add_argument('--gates', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--epochs', type=int, default=15, help='classification demo epochs')
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

    def save(section: str, result: dict) -> None:
        """Merge ``result`` into the store (per module, and per seed for trained sections)."""
        stored = data.setdefault(section, {})
        for name, value in result.items():
            if section in ('accuracy', 'detection'):
                stored.setdefault(name, {}).update(value)
            else:
                stored[name] = value
        data.setdefault('meta', {})[section] = dict(
            torch=torch.__version__,
            threads=torch.get_num_threads(),
            date=time.strftime('%Y-%m-%d'))
        with open(store, 'w') as f:
            json.dump(data, f, indent=1)

    for section in args.sections:
        print(f'== {section}', flush=True)
        if section == 'cost':
            save(section, cost_section(args.gates))
        elif section == 'latency':
            save(section, latency_section(args.gates, args.rounds))
        elif section == 'growth':
            save(section,
                 growth_section(args.gates, max(1, args.rounds // 2), tuple(args.growth_sizes)))
        elif section == 'accuracy':
            accuracy_section(args.gates, args.seeds, args.out, args.epochs, args.data_root,
                             lambda result: save('accuracy', result))
        else:
            detection_section(args.gates, args.seeds, args.out, args.det_data_root,
                              lambda result: save('detection', result))
    names = [n for n in VARIANTS if any(n in data.get(s, {}) for s in data if s != 'meta')]
    text = table(data, names)
    with open(osp.join(args.out, 'compare_gates.md'), 'w') as f:
        f.write(text + '\n')
    plot(data, names, osp.join(args.out, 'compare_gates.png'))
    print(text)
    print(f'\n{args.out}/compare_gates.md, compare_gates.png ({time.time() - start:.0f} s)')


if __name__ == '__main__':
    sys.exit(main())
