"""Latency of the DAS deformable conv, DAS backbones and a Faster R-CNN training step.

Every comparison is measured in one run, the variants alternating round by round after
warm-up, and reported as medians and ratios (machines are noisy; compare ratios).

    python tools/analysis/benchmark.py [--device cpu|cuda] [--rounds 7] [--quick]
        [--out work_dirs/bench]

Sections:
  op        the first DAS-R50 gate's deformable conv (51 -> 256 ch, 56x56): mmcv's kernel and
            the pure-PyTorch path (offsets and mask given), and the pure-PyTorch layer with its
            offset conv, against a dense 3x3 conv of the same shape, fwd and fwd+bwd
  backbone  DAS-ResNet-50 (pure-PyTorch path and mmcv's kernel) against ResNet-50, forward,
            224x224 batch 1 and 32, 800x1216 batch 1
  detector  one Faster R-CNN training step (1333x800, batch 2), DAS-R50 against R50
  growth    a DAS gate (256 ch) against mmcv's NonLocal2d at the same place, forward, at
            several map sizes; the exponent of latency against pixel count is fitted
            (linear = 1, quadratic = 2) and plotted to OUT/gate_scaling.png
  memory    peak memory of a Faster R-CNN training step (1333x800, batch 2), DAS-R50 and R50:
            CUDA's max allocated, or on CPU the peak resident size of a fresh process each
Writes a markdown table to OUT/benchmark.md and prints it.
"""
import argparse
import os
import os.path as osp
import statistics
import time
from typing import Callable, Dict, List

import torch

import mmdas  # noqa: F401
from mmdas.ops import ModulatedDeformConv2dPack, mmcv_ops_available, modulated_deform_conv2d


def ms(seconds: float) -> str:
    return f'{seconds * 1e3:.1f} ms'


def ratio(value: float, reference: float) -> str:
    return f'{value / reference:.2f}x'


def sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def no_grad_forward(module: torch.nn.Module, x: torch.Tensor) -> Callable:

    def run():
        with torch.no_grad():
            module(x)

    return run


def alternate(fns: Dict[str, Callable], rounds: int, warmup: int, device: str) -> Dict[str, float]:
    """Median seconds of each fn, the fns run in turn each round."""
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for r in range(warmup + rounds):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def op_section(device: str, rounds: int) -> List[tuple]:
    """The deformable conv itself (offsets and mask given, as the gate's layer receives them
    from its offset conv), the whole layer with that offset conv, and a dense conv."""
    torch.manual_seed(0)
    x = torch.randn(1, 51, 56, 56, device=device)
    impls = ['torch'] + (['mmcv'] if mmcv_ops_available() else [])
    layers = {
        impl: ModulatedDeformConv2dPack(51, 256, 3, padding=1, impl=impl).to(device)
        for impl in impls
    }
    for layer in layers.values():  # non-zero offsets, as after training
        torch.nn.init.normal_(layer.conv_offset.weight, 0, 0.1)
    with torch.no_grad():
        o1, o2, logits = torch.chunk(layers['torch'].conv_offset(x), 3, dim=1)
    offset, mask = torch.cat((o1, o2), dim=1), logits.sigmoid()
    dense = torch.nn.Conv2d(51, 256, 3, padding=1).to(device)
    rows = []
    for mode in ('forward', 'forward+backward'):

        def step(fn, *inputs):

            def run():
                if mode == 'forward':
                    with torch.no_grad():
                        fn(*inputs)
                else:
                    fn(*[t.detach().requires_grad_() for t in inputs]).sum().backward()

            return run

        fns = {}
        for impl, layer in layers.items():
            fns[f'dcn[{impl}]'] = step(
                lambda *t, layer=layer, impl=impl: modulated_deform_conv2d(
                    *t, layer.weight, layer.bias, padding=1, impl=impl),
                x,
                offset,
                mask)
        fns['dcn[torch] + its offset conv'] = step(layers['torch'], x)
        fns['dense conv'] = step(dense, x)
        med = alternate(fns, rounds, 3, device)
        for name, t in med.items():
            rows.append(('op 51->256 56x56 b1', mode, name, ms(t), ratio(t, med['dense conv'])))
    return rows


def backbone_section(device: str, rounds: int, sizes) -> List[tuple]:
    from mmdet.models.backbones import ResNet

    from mmdas.models import DASResNet
    models = {'ResNet-50': ResNet(50)}
    models['DAS-R50[torch]'] = DASResNet(50, deform_impl='torch')
    if mmcv_ops_available():
        models['DAS-R50[mmcv]'] = DASResNet(50, deform_impl='mmcv')
    for m in models.values():
        m.to(device).eval()
    rows = []
    for batch, h, w in sizes:
        x = torch.randn(batch, 3, h, w, device=device)
        med = alternate({n: no_grad_forward(m, x) for n, m in models.items()}, rounds, 2, device)
        for name, t in med.items():
            rows.append((f'backbone fwd {h}x{w} b{batch}', 'forward', name, ms(t),
                         ratio(t, med['ResNet-50'])))
    return rows


DETECTORS = ('Faster R-CNN R50', 'Faster R-CNN DAS-R50')


def _detector_steps(device: str,
                    variants=DETECTORS,
                    size=(800, 1333),
                    batch=2) -> Dict[str, Callable]:
    """One SGD training step of each Faster R-CNN variant on a fixed random batch."""
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.structures import InstanceData

    from mmdas.models.backbones import plain_backbone_cfg
    init_default_scope('mmdet')
    cfg = Config.fromfile('configs/das/faster-rcnn_das-r50_fpn_1x_coco.py')
    cfg.model.backbone.init_cfg = None
    model_cfgs = {'Faster R-CNN DAS-R50': cfg.model, 'Faster R-CNN R50': cfg.model.copy()}
    model_cfgs['Faster R-CNN R50'].backbone = plain_backbone_cfg(cfg.model.backbone)
    h, w = size
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, h, w, generator=g).to(device)
    samples = []
    for _ in range(batch):
        s = DetDataSample(
            metainfo=dict(
                img_shape=(h, w),
                pad_shape=(h, w),
                ori_shape=(h, w),
                scale_factor=(1.0, 1.0),
                batch_input_shape=(h, w)))
        xy = torch.rand(5, 2, generator=g) * torch.tensor([w - 200, h - 200])
        wh = 40 + torch.rand(5, 2, generator=g) * 160
        s.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], 1).to(device),
            labels=torch.randint(0, 80, (5, ), generator=g).to(device))
        samples.append(s)

    def make_step(name):
        model = MODELS.build(model_cfgs[name]).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

        def run():
            losses = model.loss(inputs, samples)
            opt.zero_grad()
            sum(v if torch.is_tensor(v) else sum(v) for k, v in losses.items()
                if 'loss' in k).backward()
            opt.step()

        return run

    return {name: make_step(name) for name in variants}


def detector_section(device: str, rounds: int) -> List[tuple]:
    med = alternate(_detector_steps(device), rounds, 1, device)
    return [('train step 1333x800 b2', 'fwd+bwd+SGD', n, ms(t), ratio(t, med['Faster R-CNN R50']))
            for n, t in med.items()]


def growth_section(device: str, rounds: int, out: str) -> List[tuple]:
    from mmcv.cnn import NonLocal2d

    from mmdas.models import DASGate
    channels, sizes = 256, (14, 28, 42, 56, 84, 112)
    modules = {
        'DAS gate': DASGate(channels).to(device).eval(),
        'NonLocal2d': NonLocal2d(channels).to(device).eval()
    }
    times = {name: [] for name in modules}
    for size in sizes:
        x = torch.randn(1, channels, size, size, device=device)
        med = alternate({n: no_grad_forward(m, x) for n, m in modules.items()}, rounds, 2, device)
        for name in modules:
            times[name].append(med[name])
    pixels = [s * s for s in sizes]
    rows = []
    import numpy as np
    for name, ts in times.items():
        # fit on the larger half, where fixed per-call overheads no longer dominate
        slope = np.polyfit(np.log(pixels[2:]), np.log(ts[2:]), 1)[0]
        for size, t in zip(sizes, ts):
            rows.append((f'growth {channels}ch {size}x{size}', 'forward', name, ms(t),
                         ratio(t, times['DAS gate'][sizes.index(size)])))
        rows.append((f'growth: t ~ pixels^k, fitted on {sizes[2]}..{sizes[-1]} px', 'fit', name,
                     '-', f'k = {slope:.2f}'))
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, ts in times.items():
        ax.loglog(pixels, [t * 1e3 for t in ts], 'o-', label=name)
    ax.set_xlabel('pixels of the feature map (H x W)')
    ax.set_ylabel('forward latency (ms)')
    ax.set_title(f'Gate latency vs map size ({channels} ch, {device})')
    ax.legend()
    ax.grid(True, which='both', alpha=0.3)
    fig.tight_layout()
    fig.savefig(osp.join(out, 'gate_scaling.png'), dpi=120)
    return rows


def _peak_rss_bytes() -> int:
    """Peak resident size of this process's own address space (``VmHWM``). Unlike
    ``getrusage``'s ``ru_maxrss``, it starts afresh at exec, so a child started by a large
    parent does not report the parent's peak."""
    with open('/proc/self/status') as f:
        line = next(line for line in f if line.startswith('VmHWM:'))
    return int(line.split()[1]) * 1024


def _peak_memory_child(variant: str, device: str, queue) -> None:
    step = _detector_steps(device, [variant])[variant]
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    step()
    step()
    if device == 'cuda':
        queue.put(torch.cuda.max_memory_allocated())
    else:
        queue.put(_peak_rss_bytes())


def memory_section(device: str) -> List[tuple]:
    import multiprocessing as mp
    ctx = mp.get_context('spawn')
    peaks = {}
    for variant in DETECTORS:
        queue = ctx.Queue()
        proc = ctx.Process(target=_peak_memory_child, args=(variant, device, queue))
        proc.start()
        peaks[variant] = queue.get()
        proc.join()
    kind = 'max allocated' if device == 'cuda' else 'peak RSS'
    return [(f'train step 1333x800 b2 memory ({kind})', '2 steps', n, f'{v / 2**30:.2f} GiB',
             ratio(v, peaks['Faster R-CNN R50'])) for n, v in peaks.items()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument(
        '--sections',
        nargs='+',
        default=['op', 'backbone', 'detector', 'growth', 'memory'],
        choices=['op', 'backbone', 'detector', 'growth', 'memory'])
    parser.add_argument(
        '--quick', action='store_true', help='fewer rounds and only 224x224 for the backbone')
    parser.add_argument('--out', default='work_dirs/bench')
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    sizes = [(1, 224, 224)] if args.quick else [(1, 224, 224), (32, 224, 224), (1, 800, 1216)]
    device_name = (
        torch.cuda.get_device_name()
        if args.device == 'cuda' else f'CPU, {torch.get_num_threads()} threads')
    os.makedirs(args.out, exist_ok=True)
    rows = []
    if 'op' in args.sections:
        rows += op_section(args.device, rounds)
    if 'backbone' in args.sections:
        rows += backbone_section(args.device, rounds, sizes)
    if 'detector' in args.sections:
        rows += detector_section(args.device, max(1, rounds // 2))
    if 'growth' in args.sections:
        rows += growth_section(args.device, rounds, args.out)
    if 'memory' in args.sections:
        rows += memory_section(args.device)
    lines = [
        f'Device: {device_name}; torch {torch.__version__}; medians of {rounds} '
        'alternating rounds after warm-up', '',
        '| case | pass | variant | median | ratio to reference |', '|---|---|---|---|---|'
    ]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    text = '\n'.join(lines)
    print(text)
    with open(osp.join(args.out, 'benchmark.md'), 'w') as f:
        f.write(text + '\n')


if __name__ == '__main__':
    main()
