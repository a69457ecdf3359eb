"""Latency of the DAS deformable conv, DAS backbones and a Faster R-CNN training step.

Every comparison is measured in one run, the variants alternating round by round after
warm-up, and reported as medians and ratios (machines are noisy; compare ratios).

    python tools/analysis/benchmark.py [--device cpu|cuda] [--rounds 7] [--quick]
        [--out work_dirs/bench]

Sections:
  op        the first DAS-R50 gate's deformable conv (51 -> 256 ch, 56x56): mmcv's kernel and
            the pure-PyTorch path against a dense 3x3 conv of the same shape, fwd and fwd+bwd
  backbone  DAS-ResNet-50 (pure-PyTorch path and mmcv's kernel) against ResNet-50, forward
  detector  one Faster R-CNN training step (1333x800, batch 2), DAS-R50 against R50
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
from mmdas.ops import ModulatedDeformConv2dPack, mmcv_ops_available


def sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


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
    torch.manual_seed(0)
    x = torch.randn(1, 51, 56, 56, device=device)
    impls = ['torch'] + (['mmcv'] if mmcv_ops_available() else [])
    layers = {impl: ModulatedDeformConv2dPack(51, 256, 3, padding=1, impl=impl).to(device)
              for impl in impls}
    for layer in layers.values():  # non-zero offsets, as after training
        torch.nn.init.normal_(layer.conv_offset.weight, 0, 0.1)
    dense = torch.nn.Conv2d(51, 256, 3, padding=1).to(device)
    rows = []
    for mode in ('forward', 'forward+backward'):
        def step(module):
            def run():
                if mode == 'forward':
                    with torch.no_grad():
                        module(x)
                else:
                    module(x.requires_grad_()).sum().backward()
            return run
        fns = {f'dcn[{impl}]': step(layer) for impl, layer in layers.items()}
        fns['dense conv'] = step(dense)
        med = alternate(fns, rounds, 3, device)
        for name, t in med.items():
            rows.append(('op 51->256 56x56 b1', mode, name, t, t / med['dense conv']))
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

        def fwd(m):
            def run():
                with torch.no_grad():
                    m(x)
            return run
        med = alternate({n: fwd(m) for n, m in models.items()}, rounds, 2, device)
        for name, t in med.items():
            rows.append((f'backbone fwd {h}x{w} b{batch}', 'forward', name, t,
                         t / med['ResNet-50']))
    return rows


def detector_section(device: str, rounds: int, size=(800, 1333), batch=2) -> List[tuple]:
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.config import Config
    from mmengine.structures import InstanceData
    cfg = Config.fromfile('configs/das/faster-rcnn_das-r50_fpn_1x_coco.py')
    cfg.model.backbone.init_cfg = None
    das_cfg = cfg.model
    plain_cfg = cfg.model.copy()
    plain_cfg.backbone = dict(type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3),
                              frozen_stages=1, norm_cfg=dict(type='BN', requires_grad=True),
                              norm_eval=True, style='pytorch')
    h, w = size
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, h, w, generator=g).to(device)
    samples = []
    for _ in range(batch):
        s = DetDataSample(metainfo=dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w),
                                        scale_factor=(1.0, 1.0), batch_input_shape=(h, w)))
        xy = torch.rand(5, 2, generator=g) * torch.tensor([w - 200, h - 200])
        wh = 40 + torch.rand(5, 2, generator=g) * 160
        s.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1).to(device),
                                      labels=torch.randint(0, 80, (5,), generator=g).to(device))
        samples.append(s)
    models = {'Faster R-CNN R50': MODELS.build(plain_cfg).to(device).train(),
              'Faster R-CNN DAS-R50': MODELS.build(das_cfg).to(device).train()}
    opts = {n: torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9) for n, m in models.items()}

    def step(name):
        def run():
            losses = models[name].loss(inputs, samples)
            opts[name].zero_grad()
            sum(v if torch.is_tensor(v) else sum(v) for k, v in losses.items()
                if 'loss' in k).backward()
            opts[name].step()
        return run
    med = alternate({n: step(n) for n in models}, rounds, 1, device)
    return [(f'train step {w}x{h} b{batch}', 'fwd+bwd+SGD', n, t, t / med['Faster R-CNN R50'])
            for n, t in med.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--sections', nargs='+', default=['op', 'backbone', 'detector'],
                        choices=['op', 'backbone', 'detector'])
    parser.add_argument('--quick', action='store_true',
                        help='fewer rounds and only 224x224 for the backbone')
    parser.add_argument('--out', default='work_dirs/bench')
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    sizes = [(1, 224, 224)] if args.quick else [(1, 224, 224), (1, 800, 1216)]
    device_name = (torch.cuda.get_device_name() if args.device == 'cuda'
                   else f'CPU, {torch.get_num_threads()} threads')
    rows = []
    if 'op' in args.sections:
        rows += op_section(args.device, rounds)
    if 'backbone' in args.sections:
        rows += backbone_section(args.device, rounds, sizes)
    if 'detector' in args.sections:
        rows += detector_section(args.device, max(1, rounds // 2))
    lines = [f'Device: {device_name}; torch {torch.__version__}; medians of {rounds} '
             'alternating rounds after warm-up', '',
             '| case | pass | variant | median ms | ratio to reference |', '|---|---|---|---|---|']
    lines += [f'| {c} | {p} | {v} | {t * 1e3:.1f} | {r:.2f}x |' for c, p, v, t, r in rows]
    text = '\n'.join(lines)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'benchmark.md'), 'w') as f:
        f.write(text + '\n')


if __name__ == '__main__':
    main()
