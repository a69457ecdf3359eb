"""What the tests share: the checkout's root, running a tool as a user would, and building a
host backbone beside its DAS variant (the host-parity helpers)."""
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional, Union

import torch
from mmengine.registry import DefaultScope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_tool(script: str,
             args: List[str],
             timeout: int = 900,
             env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """``python SCRIPT ARGS`` from the checkout's root on the CPU, output captured."""
    env = dict(os.environ, **(env or {}), PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES='-1')
    return subprocess.run(
        [sys.executable, script] + list(args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env)


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
