"""The benchmarks (the project's ``tools/benchmark.py`` is their command line): latency and
memory of the DAS deformable conv, DAS backbones, a Faster R-CNN training step and the ONNX
Runtime deployment, each comparison measured within one run.

One class per benchmark, as ``mmdet.utils.benchmark`` has them, on a shared timing base
(:class:`Benchmark`): a benchmark gives its cases, each a set of variants and the reference
their ratios are taken to; the base times each case with :func:`alternate` (each variant warmed
until its time settles, then the variants alternate round by round; medians and ratios).
:func:`run_benchmark` runs the chosen ones and writes the table.
"""
import copy
import importlib.util
import os.path as osp
import subprocess
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Type
from unittest import mock

import torch
import torch.nn.functional as F

import mmdas.ops.modulated_deform_conv as dispatch
from mmdas.ops import mmcv_ops_available, modulated_deform_conv2d
from .timing import alternate, growth_exponent, latency_by_size, no_grad_forward, peak_rss_bytes

GATE_SHAPES = ((51, 256, 56), (102, 512, 28), (205, 1024, 14), (410, 2048, 7))


def das_config(name: str):
    """mmdas's config ``das/<name>``, wherever mmdas is installed."""
    from mmengine.hub import get_config
    return get_config(f'mmdas::das/{name}')


def ms(seconds: float) -> str:
    return f'{seconds * 1e3:.1f} ms'


def ratio(value: float, reference: float) -> str:
    return f'{value / reference:.2f}x'


def load_before(rev: str) -> Callable:
    """``modulated_deform_conv2d_torch`` as git revision ``rev`` wrote it (run in this checkout;
    a revision or file that is not there stops the benchmark, naming it)."""
    try:
        source = subprocess.run(['git', 'show', f'{rev}:mmdas/ops/deform_conv_torch.py'],
                                check=True,
                                capture_output=True,
                                text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise ValueError(f'--before {rev}: cannot read mmdas/ops/deform_conv_torch.py at that '
                         f'revision in this checkout ({err})') from err
    path = osp.join(tempfile.mkdtemp(), 'deform_conv_before.py')
    with open(path, 'w') as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location('deform_conv_before', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.modulated_deform_conv2d_torch


@dataclass
class Bench:
    """What every section gets: the device, rounds per comparison, backbone input sizes
    (batch, h, w), the "before" pure-PyTorch deformable conv (or None) and the output folder."""
    device: str
    rounds: int
    sizes: Sequence[Tuple[int, int, int]]
    before: Optional[Callable]
    out: str


Row = Tuple[str, str, str, str, str]  # case, pass, variant, median, ratio to the reference
#: One timed case: its name, the pass it times, its variants, and the variant ratios are to.
Case = Tuple[str, str, Dict[str, Callable], str]


class Benchmark:
    """The shared timing base: :meth:`rows` times each of :meth:`cases` in one alternation
    (``rounds`` rounds, ``rounds // 2`` for a benchmark whose ``heavy`` is set)."""
    name = ''
    heavy = False

    def __init__(self, bench: Bench) -> None:
        self.bench = bench

    def cases(self) -> Iterator[Case]:
        raise NotImplementedError

    def rows(self) -> List[Row]:
        rounds = max(1, self.bench.rounds // 2) if self.heavy else self.bench.rounds
        rows = []
        for case, mode, fns, reference in self.cases():
            med = alternate(fns, rounds, self.bench.device)
            rows += [(case, mode, n, ms(t), ratio(t, med[reference])) for n, t in med.items()]
        return rows


def with_torch_path(fn: Callable, path: Optional[Callable]) -> Callable:
    """``fn`` run with the dispatch's pure-PyTorch deformable conv replaced by ``path`` (the
    "before" variant); ``fn`` itself when ``path`` is None."""

    def run():
        with mock.patch.object(dispatch, 'modulated_deform_conv2d_torch', path) if path else \
                nullcontext():
            fn()

    return run


class OpBenchmark(Benchmark):
    """The deformable conv of each of DAS-ResNet-50's gates against a dense conv of its shape."""
    name = 'op'

    def cases(self) -> Iterator[Case]:
        device, before = self.bench.device, self.bench.before
        for c_in, c_out, size in GATE_SHAPES:
            torch.manual_seed(0)
            x = torch.randn(1, c_in, size, size, device=device)
            offset = torch.randn(1, 18, size, size, device=device) * 0.5
            mask = torch.rand(1, 9, size, size, device=device)
            dense = torch.nn.Conv2d(c_in, c_out, 3, padding=1).to(device)  # a host layer's layout
            # As the gate hands them over: its compressed branch runs channels-last, and its layer
            # keeps the weight channels-last (see DispatchingDeformConv2dPack).
            dcn_inputs = [
                t.contiguous(memory_format=torch.channels_last)
                for t in (x, offset, mask, dense.weight.detach())
            ] + [dense.bias.detach()]
            dense_inputs = [x, dense.weight.detach(), dense.bias.detach()]
            variants = {'dcn[torch]': ('torch', None)}
            if before is not None:
                variants['dcn[torch, before]'] = ('torch', before)
            if mmcv_ops_available():
                variants['dcn[mmcv]'] = ('mmcv', None)
            for mode in ('forward', 'forward+backward'):
                fns = {}
                for name, (impl, path) in variants.items():
                    dcn = partial(modulated_deform_conv2d, padding=1, impl=impl)
                    fns[name] = with_torch_path(timed_pass(dcn, dcn_inputs, mode), path)
                fns['dense conv'] = timed_pass(partial(F.conv2d, padding=1), dense_inputs, mode)
                yield f'op {c_in}->{c_out} {size}x{size} b1', mode, fns, 'dense conv'


def timed_pass(fn: Callable, inputs: List[torch.Tensor], mode: str) -> Callable:
    """``fn(*inputs)`` without grad ('forward'), or with a backward of its sum."""

    def run():
        if mode == 'forward':
            with torch.no_grad():
                fn(*inputs)
        else:
            fn(*[t.detach().requires_grad_() for t in inputs]).sum().backward()

    return run


def resnet50_pair(device: str) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """mmdet's ResNet-50 (the plain builder's twin) and DAS-ResNet-50 with non-zero offsets
    (as after training), in eval mode on ``device``."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    from mmdas.models.backbones import plain_backbone_cfg
    init_default_scope('mmdet')
    das_cfg = dict(type='DASResNet', depth=50, deform_impl='torch')
    plain, das = MODELS.build(plain_backbone_cfg(das_cfg)), MODELS.build(das_cfg)
    for gate in das.stage_gates():
        torch.nn.init.normal_(gate.deform_conv.conv_offset.weight, 0, 0.01)
    for model in (plain, das):
        model.to(device)
        model.eval()  # mmdet's ResNet.train() returns None: no chaining
    return plain, das


class BackboneBenchmark(Benchmark):
    """DAS-ResNet-50 against ResNet-50, forward, NCHW and both channels-last."""
    name = 'backbone'

    def cases(self) -> Iterator[Case]:
        device, before = self.bench.device, self.bench.before
        plain, das = resnet50_pair(device)
        models = {'ResNet-50': (plain, None), 'DAS-R50[torch]': (das, None)}
        if before is not None:
            models['DAS-R50[torch, before]'] = (das, before)
        if mmcv_ops_available():
            mmcv_das = copy.deepcopy(das)
            for gate in mmcv_das.stage_gates():
                gate.deform_conv.impl = 'mmcv'
            models['DAS-R50[mmcv]'] = (mmcv_das, None)
        channels_last = {
            'ResNet-50 (channels-last)': copy.deepcopy(plain),
            'DAS-R50[torch] (channels-last)': copy.deepcopy(das)
        }
        for m in channels_last.values():
            m.to(memory_format=torch.channels_last)
        for batch, h, w in self.bench.sizes:
            x = torch.randn(batch, 3, h, w, device=device)
            yield (f'backbone fwd {h}x{w} b{batch}', 'forward', {
                n: with_torch_path(no_grad_forward(m, x), path)
                for n, (m, path) in models.items()
            }, 'ResNet-50')
            x_cl = x.contiguous(memory_format=torch.channels_last)
            yield (f'backbone fwd {h}x{w} b{batch}, both channels-last', 'forward', {
                n: no_grad_forward(m, x_cl)
                for n, m in channels_last.items()
            }, 'ResNet-50 (channels-last)')


DETECTORS = ('Faster R-CNN R50', 'Faster R-CNN DAS-R50')
WITH_CP = ' with_cp'


def _detector_steps(device: str,
                    variants=DETECTORS,
                    size=(800, 1333),
                    batch=2) -> Dict[str, Callable]:
    """One SGD training step of each Faster R-CNN variant on a fixed random batch (a variant
    name ending in ' with_cp' checkpoints the backbone's blocks and gates)."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    from mmengine.structures import InstanceData

    from mmdas.apis import unscaled_det_sample
    from mmdas.models.backbones import plain_backbone_cfg
    init_default_scope('mmdet')
    cfg = das_config('faster-rcnn_das-r50_fpn_1x_coco.py')
    cfg.model.backbone.init_cfg = None
    model_cfgs = {'Faster R-CNN DAS-R50': cfg.model, 'Faster R-CNN R50': cfg.model.copy()}
    model_cfgs['Faster R-CNN R50'].backbone = plain_backbone_cfg(cfg.model.backbone)
    for name in DETECTORS:
        model_cfgs[name + WITH_CP] = copy.deepcopy(model_cfgs[name])
        model_cfgs[name + WITH_CP].backbone.with_cp = True
    h, w = size
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, h, w, generator=g).to(device)
    samples = []
    for _ in range(batch):
        s = unscaled_det_sample(h, w)
        xy = torch.rand(5, 2, generator=g) * torch.tensor([w - 200, h - 200])
        wh = 40 + torch.rand(5, 2, generator=g) * 160
        s.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], 1).to(device),
            labels=torch.randint(0, 80, (5, ), generator=g).to(device))
        samples.append(s)

    def make_step(name):
        model = MODELS.build(model_cfgs[name]).to(device)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

        def loss():
            losses = model.loss(inputs, samples)
            return sum(
                v if torch.is_tensor(v) else sum(v) for k, v in losses.items() if 'loss' in k)

        def run():
            opt.zero_grad()
            loss().backward()
            opt.step()

        run.model, run.loss = model, loss
        return run

    return {name: make_step(name) for name in variants}


class DetectorTrainBenchmark(Benchmark):
    """One Faster R-CNN training step (1333x800, batch 2), DAS-R50 against R50."""
    name = 'detector'
    heavy = True

    def cases(self) -> Iterator[Case]:
        steps = _detector_steps(self.bench.device)
        if self.bench.before is not None:
            steps['Faster R-CNN DAS-R50 (before)'] = with_torch_path(steps['Faster R-CNN DAS-R50'],
                                                                     self.bench.before)
        yield 'train step 1333x800 b2', 'fwd+bwd+SGD', steps, 'Faster R-CNN R50'


class GrowthBenchmark(Benchmark):
    """A DAS gate against mmcv's NonLocal2d over map sizes: each size one alternation
    (:func:`latency_by_size`), the exponent of latency against pixels fitted and plotted."""
    name = 'growth'

    def rows(self) -> List[Row]:
        from mmcv.cnn import NonLocal2d

        from mmdas.models import DASGate
        device, channels, sizes = self.bench.device, 256, (14, 28, 42, 56, 84, 112)
        modules = {
            'DAS gate': DASGate(channels).to(device).eval(),
            'NonLocal2d': NonLocal2d(channels).to(device).eval()
        }
        times = latency_by_size(modules, channels, sizes, self.bench.rounds, device)
        pixels = [s * s for s in sizes]
        rows = []
        for name, ts in times.items():
            for size, t in zip(sizes, ts):
                rows.append((f'growth {channels}ch {size}x{size}', 'forward', name, ms(t),
                             ratio(t, times['DAS gate'][sizes.index(size)])))
            rows.append(
                (f'growth: t ~ pixels^k, fitted on {sizes[len(sizes) // 3]}..{sizes[-1]} px', 'fit',
                 name, '-', f'k = {growth_exponent(sizes, ts):.2f}'))
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
        fig.savefig(osp.join(self.bench.out, 'gate_scaling.png'), dpi=120)
        return rows


def _peak_memory_child(variant: str, device: str, queue) -> None:
    """In a fresh process: the bytes one forward keeps for backward, then the peak memory of
    one forward and backward."""
    from mmdas.analysis.memory import saved_tensor_bytes
    step = _detector_steps(device, [variant])[variant]
    saved = saved_tensor_bytes(step.model, step.loss)
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    step()
    queue.put((saved, torch.cuda.max_memory_allocated() if device == 'cuda' else peak_rss_bytes()))


class MemoryBenchmark(Benchmark):
    """Peak memory and the bytes kept for backward of the training step, each variant in a
    fresh process (no timing)."""
    name = 'memory'

    def rows(self) -> List[Row]:
        import multiprocessing as mp
        device = self.bench.device
        ctx = mp.get_context('spawn')
        peaks, saved = {}, {}
        for variant in [name + cp for cp in ('', WITH_CP) for name in DETECTORS]:
            queue = ctx.Queue()
            proc = ctx.Process(target=_peak_memory_child, args=(variant, device, queue))
            proc.start()
            saved[variant], peaks[variant] = queue.get()
            proc.join()
        kind = 'max allocated' if device == 'cuda' else 'peak RSS'
        rows = []
        for case, values in ((f'train fwd+bwd 1333x800 b2 ({kind})', peaks),
                             ('train fwd 1333x800 b2 (kept for backward)', saved)):
            rows += [(case, 'memory', n, f'{v / 2**20:.0f} MiB',
                      ratio(v, values['Faster R-CNN R50'])) for n, v in values.items()]
        return rows


def cpu_session_options():
    """ONNX Runtime on the CPU with the process's thread count; its threads sleep after a run
    (by default they spin, which slows the PyTorch run that alternates with them)."""
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return options


class OnnxBenchmark(Benchmark):
    """ONNX Runtime (CPU) against PyTorch, DAS-R50 and ResNet-50, 224x224 batch 1."""
    name = 'onnx'

    def cases(self) -> Iterator[Case]:
        import onnxruntime

        from mmdas.deployment import export_onnx
        if self.bench.device != 'cpu':
            raise ValueError("the onnx benchmark measures ONNX Runtime's CPU provider: run it "
                             'with --device cpu')
        torch.manual_seed(0)
        x = torch.randn(1, 3, 224, 224)
        fns = {}
        for name, model in zip(('ResNet-50', 'DAS-R50'), resnet50_pair('cpu')):
            path = export_onnx(model, x, osp.join(self.bench.out, f'{name}.onnx'))
            session = onnxruntime.InferenceSession(
                path, cpu_session_options(), providers=['CPUExecutionProvider'])
            feed = {session.get_inputs()[0].name: x.numpy()}
            fns[f'{name} ONNX Runtime'] = partial(session.run, None, feed)
            fns[f'{name} PyTorch'] = no_grad_forward(model, x)
        yield 'onnx 224x224 b1', 'forward', fns, 'ResNet-50 ONNX Runtime'


#: The whole-detector configs (in ``configs/das``) the onnx_detector section exports, one per
#: family.
DETECTOR_CONFIGS = {
    'Faster R-CNN': 'faster-rcnn_das-r50_fpn_1x_coco.py',
    'Mask R-CNN': 'mask-rcnn_das-r50_fpn_1x_coco.py',
    'Cascade R-CNN': 'cascade-rcnn_das-r50_fpn_1x_coco.py',
    'RetinaNet': 'retinanet_das-r50_fpn_1x_coco.py',
    'FCOS': 'fcos_das-r50-caffe_fpn_gn-head_1x_coco.py',
}


class OnnxDetectorBenchmark(Benchmark):
    """Each exported family's whole detector (image in, detections out, masks pasted) at
    1333x800, batch 1, with untrained heads: ONNX Runtime (CPU, with the NumPy pre- and
    post-processing of ``onnx_infer``) against mmdet's ``inference_detector``, DAS-R50 and
    R50, each family timed in its own alternation."""
    name = 'onnx_detector'
    heavy = True
    configs = DETECTOR_CONFIGS
    #: the image's (height, width); the backbones' names without and with gates
    size, arms = (800, 1333), ('R50', 'DAS-R50')

    def cases(self) -> Iterator[Case]:
        import numpy as np
        import onnxruntime

        from mmdas.apis import init_model
        from mmdas.deployment.detector import export_detector, mmdet_detections, onnx_detections
        if self.bench.device != 'cpu':
            raise ValueError(f'the {self.name} benchmark measures ONNX Runtime on the CPU')
        image = np.random.default_rng(0).integers(0, 256, (*self.size, 3), dtype=np.uint8)
        for family, config in self.configs.items():
            fns = {}
            for arm, plain in zip(self.arms, (True, False)):
                name = f'{family} {arm}'
                model = init_model(das_config(config), plain_backbone=plain)
                path = export_detector(model,
                                       osp.join(self.bench.out, f'{name.replace(" ", "_")}.onnx'),
                                       image)
                session = onnxruntime.InferenceSession(
                    path, cpu_session_options(), providers=['CPUExecutionProvider'])
                fns[f'{name} ONNX Runtime'] = partial(onnx_detections, session, image)
                fns[f'{name} PyTorch (mmdet)'] = partial(mmdet_detections, model, image)
            yield (f'whole detector {self.size[1]}x{self.size[0]} b1', 'image to detections', fns,
                   f'{family} {self.arms[0]} ONNX Runtime')


class OnnxRTMDetBenchmark(OnnxDetectorBenchmark):
    """RTMDet-tiny with DAS gates in its CSPNeXt against RTMDet-tiny, whole, at 640x640."""
    name = 'onnx_rtmdet'
    configs = {'RTMDet-tiny': 'rtmdet_das-tiny_8xb32-300e_coco.py'}
    size, arms = (640, 640), ('CSPNeXt', 'DAS-CSPNeXt')


#: The benchmarks by name, in the order they run.
SECTIONS: Dict[str, Type[Benchmark]] = {
    cls.name: cls
    for cls in (OpBenchmark, BackboneBenchmark, DetectorTrainBenchmark, GrowthBenchmark,
                MemoryBenchmark, OnnxBenchmark, OnnxDetectorBenchmark, OnnxRTMDetBenchmark)
}


def run_benchmark(bench: Bench, sections: Sequence[str], before_rev: Optional[str] = None) -> str:
    """Run ``sections`` (names of :data:`SECTIONS`, in its order) and return the markdown table
    with a line naming the device, torch, rounds and time; also written to
    ``bench.out/benchmark.md``."""
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f'sections must be among {list(SECTIONS)}, got {unknown}')
    device_name = (
        torch.cuda.get_device_name()
        if bench.device == 'cuda' else f'CPU, {torch.get_num_threads()} threads')
    start = time.time()
    rows = [row for name in SECTIONS if name in sections for row in SECTIONS[name](bench).rows()]
    before = (f'"before": the pure-PyTorch deformable conv of {before_rev} (run in today\'s '
              'gate); ' if before_rev else '')
    lines = [
        f'Device: {device_name}; torch {torch.__version__}; medians of {bench.rounds} '
        f'alternating rounds, each variant warmed until settled; {before}'
        f'{time.time() - start:.0f} s', '',
        '| case | pass | variant | median | ratio to reference |', '|---|---|---|---|---|'
    ]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    text = '\n'.join(lines)
    with open(osp.join(bench.out, 'benchmark.md'), 'w') as f:
        f.write(text + '\n')
    return text
