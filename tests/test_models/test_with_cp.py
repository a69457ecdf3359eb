"""``with_cp`` checkpoints the gates with the host's blocks: the same outputs, gradients and
buffers as without it, and far fewer bytes kept for backward; mixed precision on the CPU."""
import pytest
import torch

import mmdas  # noqa: F401
from mmdas.analysis.memory import saved_tensor_bytes
from mmdas.models.backbones.das_backbone import GatedStage, plain_backbone_cfg
from utils import assert_every_parameter_learns

CASES = [
    ('mmdet', dict(type='DASResNet', depth=50, base_channels=16, norm_eval=True)),
    ('mmdet', dict(type='DASResNet', depth=50, base_channels=16, frozen_stages=1, norm_eval=True)),
    ('mmdet', dict(type='DASResNet', depth=18, base_channels=16, gate=dict(type='CBAMGate'))),
    ('mmdet', dict(type='DASMobileNetV2', widen_factor=0.5, gate_indices=(0, 2, 6))),
    ('mmpretrain', dict(type='DASResNet', depth=18, base_channels=16, out_indices=(0, 1, 2, 3))),
    ('mmpretrain',
     dict(
         type='DASResNet',
         depth=50,
         base_channels=16,
         frozen_stages=1,
         gate=dict(type='CBAMGate'),
         out_indices=(0, 1, 2, 3))),
    ('mmseg', dict(type='DASResNetV1c', depth=18, base_channels=16)),
]


def build(scope_name, cfg, with_cp):
    from mmengine.registry import MODELS, DefaultScope
    with DefaultScope.overwrite_default_scope(scope_name):
        torch.manual_seed(0)
        model = MODELS.build(dict(cfg, with_cp=with_cp))
    model.init_weights()
    return model


def step(model, x):
    """One training-mode forward and backward; outputs, gradients, buffers afterwards."""
    model.train()
    outs = model(x)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    loss = sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    return [o.detach() for o in outs], grads, dict(model.named_buffers())


@pytest.mark.parametrize('scope_name, cfg', CASES)
def test_with_cp_recomputes_the_gates_and_changes_nothing(scope_name, cfg):
    plain, checkpointed = build(scope_name, cfg, False), build(scope_name, cfg, True)
    checkpointed.load_state_dict(plain.state_dict())
    stages = [m for m in checkpointed.modules() if isinstance(m, GatedStage)]
    assert stages and all(stage.with_cp for stage in stages)
    # every block reports the host's with_cp, as the host's own tests assert
    host = build(scope_name, plain_backbone_cfg(cfg), True)
    assert block_flags(checkpointed) == block_flags(host) and True in block_flags(host).values()
    x = torch.randn(2, 3, 64, 64)
    # inside the segment the last block does not checkpoint itself again
    seen = []
    hooks = [
        list(stage)[-2].register_forward_pre_hook(
            lambda block, inputs: seen.append(getattr(block, 'with_cp', False))) for stage in stages
    ]
    ref, got = step(plain, x), step(checkpointed, x)
    for hook in hooks:
        hook.remove()
    assert seen and not any(seen)  # forward and its recomputation in backward
    assert block_flags(checkpointed) == block_flags(host)
    for a, b in zip(ref[0], got[0]):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    assert ref[1].keys() == got[1].keys()
    for name, grad in ref[1].items():
        if grad is None:
            assert got[1][name] is None, name
        else:
            torch.testing.assert_close(got[1][name], grad, rtol=1e-4, atol=1e-5, msg=name)
    gate_grads = [g for n, g in got[1].items() if '_gate.' in n]
    assert gate_grads and all(g is not None for g in gate_grads)  # frozen_stages=1 too
    # BatchNorm statistics: the segments mmdas checkpoints (each gated stage's last block and
    # its gate, CBAM's BatchNorm included) count a batch once. The hosts' own with_cp
    # (reentrant: mmpretrain's ResNet, mmdet's MobileNetV2) counts it twice in the other blocks
    # it recomputes, as it does without gates.
    stage_names = {id(m): n for n, m in checkpointed.named_modules()}
    segments = tuple(f'{stage_names[id(stage)]}.{name}.' for stage in stages
                     for name in list(stage._modules)[-2:])
    twice = double_counted(ref[2], got[2])
    assert not [n for n in twice if f'{n}.'.startswith(segments)]
    for name, buffer in ref[2].items():
        if name.rsplit('.', 1)[0] not in twice:
            torch.testing.assert_close(got[2][name], buffer, rtol=0, atol=1e-6, msg=name)


def block_flags(model):
    """``with_cp`` of each module of ``model`` that has one, by name (gated stages left out)."""
    return {
        name: module.with_cp
        for name, module in model.named_modules()
        if hasattr(module, 'with_cp') and not isinstance(module, GatedStage) and name
    }


def double_counted(ref, got):
    """The BatchNorms (module names) that counted more batches in ``got`` than in ``ref``."""
    return {
        n.rsplit('.', 1)[0]
        for n, b in ref.items() if n.endswith('num_batches_tracked') and not torch.equal(got[n], b)
    }


def test_with_cp_keeps_the_gates_activations_out_of_memory():
    """Bytes kept for backward by DAS-R50 (width 16, 256x384), counted tensor by tensor:
    with_cp brings DAS to within 10 % of the host with with_cp."""
    x = torch.randn(1, 3, 256, 384)
    kept = {}
    for name in ('ResNet', 'DASResNet'):
        for with_cp in (False, True):
            model = build('mmdet', dict(type=name, depth=50, base_channels=16, norm_eval=True),
                          with_cp)
            model.train()
            kept[name, with_cp] = saved_tensor_bytes(model, lambda: model(x))
    assert kept['DASResNet', True] < 0.3 * kept['DASResNet', False]
    assert kept['DASResNet', True] <= 1.1 * kept['ResNet', True]
    assert kept['DASResNet', False] > 1.2 * kept['ResNet', False]  # the gates' activations


def test_das_detector_backbone_and_neck_train_under_bfloat16_autocast():
    """What ``--amp`` runs, on the CPU: autocast bf16 (mmcv's NMS and RoIAlign have no bf16 CPU
    kernels, so backbone and neck) gives finite outputs and a finite gradient in every gate
    parameter; the deformable conv computes in float32 inside (DESIGN: unchanged)."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    from mmdas.models.backbones import named_gates
    from utils import DEMO_DET
    cfg = Config.fromfile(DEMO_DET)
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        feats = model.neck(model.backbone(torch.randn(2, 3, 96, 128)))
    assert all(f.dtype == torch.bfloat16 and torch.isfinite(f).all() for f in feats)
    sum(f.float().mean() for f in feats).backward()
    gates = named_gates(model)
    assert len(gates) == 4
    for _, gate in gates:
        assert_every_parameter_learns(gate.named_parameters(), rounding=2**-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='mmengine AMP needs CUDA')
def test_amp_training_step_on_cuda(coco_shapes, tmp_path):
    from mmdas.engine import build_runner
    from utils import tiny_det_cfg
    cfg = tiny_det_cfg(coco_shapes, tmp_path, iters=1)
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.model.backbone.deform_impl = 'mmcv'
    build_runner(cfg).train()
