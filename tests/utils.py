"""What the tests share: the checkout's root, running a tool as a user would, a demo detector
config for a few iterations and its twin in each detector family, a free port, and building a
host backbone beside its DAS variant (the host-parity helpers)."""
import os
import os.path as osp
import socket
import subprocess
import sys
import traceback
from typing import Dict, List, Optional, Union

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_DET = osp.join(ROOT, 'configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py')


def run_tool(script: str,
             args: List[str],
             timeout: int = 900,
             env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """``python SCRIPT ARGS`` from the checkout's root on the CPU, output captured."""
    extra = env or {}
    env = dict(os.environ, **extra, CUDA_VISIBLE_DEVICES='-1')
    env['PYTHONPATH'] = os.pathsep.join(p for p in (ROOT, extra.get('PYTHONPATH')) if p)
    return subprocess.run(
        [sys.executable, script] + list(args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env)


def load_tool(script: str):
    """The tool ``script`` (a path from the checkout's root, ``tools/train.py``) as a module: a
    tool is a script, not a package."""
    import importlib.util
    path = osp.join(ROOT, script)
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(script: str, args: List[str]) -> subprocess.CompletedProcess:
    """``main(args)`` of the tool ``script`` in this process, from the checkout's root, with its
    exit status and what it printed: :func:`run_tool` without a new interpreter (for tests where
    the process boundary is not what is tested). A ``SystemExit`` is its status; a message it
    carries goes to stderr, and an uncaught exception's traceback with status 1, as the
    interpreter would give them."""
    import contextlib
    import io
    module = load_tool(script)
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(ROOT)
    managers = global_instances()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = module.main(list(args)) or 0
            except SystemExit as stop:
                code = stop.code
                if code is not None and not isinstance(code, int):
                    print(code, file=sys.stderr)
                    code = 1
                code = code or 0
            except Exception:  # what the interpreter prints and returns for an uncaught one
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(here)
        for cls, instances in managers.items():  # the tool's loggers, scope, visualizers go
            cls._instance_dict.clear()
            cls._instance_dict.update(instances)
    return subprocess.CompletedProcess([script] + list(args), code, out.getvalue(), err.getvalue())


def global_instances() -> dict:
    """mmengine's global instances (loggers bound to a stream, the default scope, message
    hubs, visualizers), by class: what an in-process run must leave as it found them."""
    from mmengine.utils import ManagerMixin
    classes, todo = [], [ManagerMixin]
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo += cls.__subclasses__()
    return {cls: dict(cls._instance_dict) for cls in classes if '_instance_dict' in vars(cls)}


def tiny_det_cfg(shapes: str, work_dir, iters: int = 2, config: str = DEMO_DET):
    """The demo detector ``config`` on the ``shapes`` set for ``iters`` iterations at batch 2,
    a checkpoint and a log line every iteration."""
    from mmdas.datasets import shapes_cfg
    cfg = shapes_cfg(config, shapes, seed=0, length=iters)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.batch_size = 2
    cfg.param_scheduler[1].update(milestones=[iters])
    cfg.default_hooks.checkpoint.interval = 1
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(work_dir)
    return cfg


def unscoped(value):
    """A config value without the ``_scope_`` tags mmengine adds to ``package::`` bases."""
    if isinstance(value, dict):
        return {k: unscoped(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [unscoped(v) for v in value]
    return value


def family_twin(mmdet_config: str, shapes: str, work_dir, iters: int) -> Config:
    """The demo detector's twin in another family: mmdet's ``mmdet_config`` model at the demo's
    width (DAS-ResNet-18, base 16; necks and heads at 64 channels; 4 classes) and the demo's
    fewer proposals, samples and torchvision RoIAlign, with the demo's data, schedule and
    evaluation (a Mask R-CNN loads and scores masks too)."""
    from mmengine.hub import get_config
    cfg = tiny_det_cfg(shapes, work_dir, iters)
    model = unscoped(get_config(f'mmdet::{mmdet_config}').model.to_dict())

    def narrow(value, key=None):
        if isinstance(value, dict) and value.get('type') == 'RoIAlign':
            return dict(value, use_torchvision=True)
        if isinstance(value, dict):
            return {k: narrow(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [narrow(v) for v in value]
        if key in ('in_channels', 'feat_channels', 'out_channels', 'conv_out_channels') and \
                value == 256:
            return 64
        smaller = dict(
            num_classes={80: 4},
            nms_pre={
                2000: 300,
                1000: 300
            },
            max_per_img={1000: 100},
            num={512: 128})
        return smaller.get(key, {}).get(value, value) if isinstance(value, int) else value

    model = narrow(model)
    model.update(backbone=cfg.model.backbone, data_preprocessor=cfg.model.data_preprocessor)
    model['neck']['in_channels'] = [16, 32, 64, 128]
    cfg.model = model
    if 'mask_head' in model.get('roi_head', {}):
        for pipeline in (cfg.train_dataloader.dataset.pipeline,
                         cfg.test_dataloader.dataset.pipeline):
            for step in pipeline:
                if step['type'] == 'LoadAnnotations':
                    step['with_mask'] = True
        cfg.test_evaluator.metric = ['bbox', 'segm']
    return cfg


def realtime_twin(config: str, shapes: str, work_dir, iters: int) -> Config:
    """A real-time detector config of ours (``configs/das/<config>``: RTMDet, YOLOX) on the demo's
    data, schedule and evaluation: its own gated backbone, neck and head (4 classes), its EMA
    hook; the demo's data preprocessor (no multi-scale batch resizing) and no download."""
    cfg = tiny_det_cfg(shapes, work_dir, iters)
    real = Config.fromfile(osp.join(ROOT, 'configs/das', config))
    model = unscoped(real.model.to_dict())
    model['bbox_head']['num_classes'] = 4
    model['backbone']['init_cfg'] = None
    model['data_preprocessor'] = cfg.model.data_preprocessor
    cfg.model = model
    cfg.custom_hooks = [
        hook for hook in unscoped(real.to_dict()['custom_hooks']) if hook['type'] == 'EMAHook'
    ]
    return cfg


def free_port() -> int:
    """A port nothing listens on now (a fixed one can still be in TIME_WAIT from a last run)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def build_backbone(scope: str, cfg: dict, das: bool) -> torch.nn.Module:
    """The host backbone of ``cfg``, or its DAS variant with the same arguments
    (``deform_impl='torch'``)."""
    from mmengine.registry import MODELS
    cfg = dict(cfg)
    if das:
        cfg['type'] = 'DAS' + cfg['type']
        cfg['deform_impl'] = 'torch'
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg)


def forward_result(model: torch.nn.Module,
                   x: torch.Tensor,
                   mode: str,
                   backward: bool = False) -> Union[list, tuple]:
    """Output shapes, or ``(error type, first line)`` of what the forward (and backward)
    raised: the host's own errors are part of what is compared."""
    model.train(mode == 'train')
    try:
        outs = model(x)
        outs = outs if isinstance(outs, (tuple, list)) else (outs, )
        if backward:
            sum(o.float().mean() for o in outs).backward()
    except Exception as err:
        return type(err), str(err).split('\n')[0]
    return [tuple(o.shape) for o in outs]


def plugin_resnet(position: str = 'after_conv3', stages=(True, True, True, True)):
    """mmdet's own ResNet-50 (base width 16) with a DAS gate plugin at ``position``."""
    from mmdet.models.backbones import ResNet
    return ResNet(
        50,
        base_channels=16,
        plugins=[
            dict(cfg=dict(type='DASGate', deform_impl='torch'), stages=stages, position=position)
        ])


#: Parameters whose gradient is zero in exact arithmetic, so that only rounding leaves a residue
#: (whose size and sign depend on the CPU's kernels): a per-channel constant that the next step
#: removes. DASGate's depthwise and pointwise biases (the instance norm after them),
#: ContextBlock's ``conv_mask.bias`` (the softmax over positions) and DANetGate's ``key.bias``
#: (``q . b`` is the same for every key under the softmax over keys).
ZERO_GRADIENT = ('depthwise.bias', 'pointwise.bias', 'conv_mask.bias', 'key.bias')


def assert_every_parameter_learns(named_parameters, rounding: float = 1e-4) -> None:
    """Every parameter has a finite gradient; a non-zero one, except those of
    :data:`ZERO_GRADIENT`, whose gradient must be rounding-sized: at most ``rounding`` of the
    largest (float32's residues are far below 1e-4; for bfloat16, which keeps 8 bits, pass
    ``2 ** -6``, four times its unit roundoff)."""
    grads = dict(named_parameters)
    for name, param in grads.items():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    largest = max(float(p.grad.abs().max()) for p in grads.values())
    for name, param in grads.items():
        if name.endswith(ZERO_GRADIENT):
            assert float(param.grad.abs().max()) <= rounding * largest, name
        else:
            assert param.grad.abs().sum() > 0, name
