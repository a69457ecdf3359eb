"""GatedBackbone: gates after the stages of the frameworks' own CNN backbones, each checked
against its plain host (the same output shapes, the host's checkpoint loading exactly, the same
frozen parameters) and trained one step."""
import copy
import io
import pickle

import pytest
import torch

import mmdas  # noqa: F401
from mmdas.models.backbones import named_gates
from utils import assert_every_parameter_learns

#: (framework, host config, stages): every host the issue names, small variants.
HOSTS = [
    ('mmdet', dict(type='CSPNeXt', arch='P5', deepen_factor=0.167,
                   widen_factor=0.375), ('stage1', 'stage2', 'stage3', 'stage4')),
    ('mmdet', dict(type='CSPDarknet', deepen_factor=0.33,
                   widen_factor=0.25), ('stage1', 'stage2', 'stage3', 'stage4')),
    ('mmdet', dict(type='RegNet', arch='regnetx_400mf',
                   norm_eval=True), ('layer1', 'layer2', 'layer3', 'layer4')),
    ('mmdet', dict(type='EfficientNet', arch='b0',
                   out_indices=(2, 4, 6)), tuple(f'layers.{i}' for i in range(1, 7))),
    ('mmpretrain',
     dict(type='ConvNeXt', arch='atto', out_indices=(0, 1, 2, 3),
          gap_before_final_norm=False), tuple(f'stages.{i}' for i in range(4))),
    ('mmpretrain', dict(type='EfficientNet', arch='b0',
                        out_indices=(2, 4, 6)), tuple(f'layers.{i}' for i in range(1, 7))),
    ('mmpretrain', dict(type='RegNet', arch='regnetx_400mf',
                        out_indices=(0, 1, 2, 3)), ('layer1', 'layer2', 'layer3', 'layer4')),
    ('mmpretrain', dict(type='MobileNetV3', arch='small',
                        out_indices=(3, 8, 12)), ('layer1', 'layer3', 'layer8', 'layer11')),
    ('mmseg', dict(type='MobileNetV3', arch='small'), ('layer1', 'layer3', 'layer8', 'layer11')),
]
IDS = [f'{scope}-{cfg["type"]}' for scope, cfg, _ in HOSTS]


def build(scope, cfg, stages=None, **extra):
    from mmengine.registry import init_default_scope
    init_default_scope(scope)
    from mmengine.registry import MODELS
    cfg = dict(cfg, **extra)
    if stages is not None:
        cfg = dict(cfg, type='GatedBackbone', host=cfg['type'], stages=stages)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def shapes(outputs):
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [tuple(o.shape) for o in outputs]


@pytest.mark.slow
@pytest.mark.parametrize('scope, cfg, stages', HOSTS, ids=IDS)
def test_the_gated_host_is_the_host_plus_gates(scope, cfg, stages, tmp_path):
    plain, gated = build(scope, cfg), build(scope, cfg, stages)
    # the host's keys, unchanged, and one gate per stage at the stage's width
    own = gated.state_dict()
    assert set(own) - set(plain.state_dict()) == {k for k in own if k.startswith('gates.')}
    assert set(plain.state_dict()) <= set(own)
    assert [name
            for name, _ in named_gates(gated)] == ['gates.' + s.replace('.', '_') for s in stages]
    # a plain checkpoint loads through init_cfg, every host tensor exactly, the gates new
    path = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict=plain.state_dict()), path)
    loaded = build(scope, cfg, stages, init_cfg=dict(type='Pretrained', checkpoint=path))
    loaded.init_weights()
    for key, value in plain.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # the same outputs' shapes at several sizes, batch 1 included
    for model in (plain, gated):
        model.eval()
    with torch.no_grad():
        for x in (torch.randn(1, 3, 64, 64), torch.randn(2, 3, 96, 80)):
            assert shapes(gated(x)) == shapes(plain(x))
    # a training step: every gate parameter gets a gradient
    gated.train()
    sum(o.float().mean() for o in gated(torch.randn(2, 3, 64, 64))).backward()
    assert_every_parameter_learns(gated.gates.named_parameters())


@pytest.mark.parametrize('scope, cfg, stages', HOSTS, ids=IDS)
def test_frozen_stages_freeze_the_hosts_parameters_and_the_gates_train(scope, cfg, stages):
    frozen = 2 if cfg['type'] in ('MobileNetV3', 'EfficientNet') else 1
    plain, gated = build(
        scope, cfg, frozen_stages=frozen), build(
            scope, cfg, stages, frozen_stages=frozen)
    plain.train()  # mmdet's ResNet family returns None from train()
    gated.train()
    host_frozen = {k for k, p in plain.named_parameters() if not p.requires_grad}
    assert host_frozen and {k
                            for k, p in gated.named_parameters()
                            if not p.requires_grad} == host_frozen
    assert all(g.training for g in gated.stage_gates())
    # freeze_gates: a frozen stage's gate is frozen with it, the others train
    kept = build(scope, cfg, stages, frozen_stages=frozen, freeze_gates=True)
    kept.train()
    modules = dict(kept.named_modules())
    states = [(not any(p.requires_grad for p in modules[name].parameters()), gate)
              for name, gate in zip(stages, kept.stage_gates())]
    assert any(frozen for frozen, _ in states) and not all(frozen for frozen, _ in states)
    for frozen, gate in states:
        assert gate.training != frozen
        assert all(p.requires_grad != frozen for p in gate.parameters())


def torch_saved(model):
    buffer = io.BytesIO()
    torch.save(model, buffer)  # pickle protocol 2
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)  # a whole model is not weights only


COPIERS = dict(
    deepcopy=copy.deepcopy, pickle=lambda m: pickle.loads(pickle.dumps(m)), torch_save=torch_saved)


@pytest.mark.parametrize('copier', list(COPIERS))
def test_a_copy_runs_its_own_gates(copier):
    """RTMDet's and YOLOX's EMA hooks deep-copy the model, ``torch.save(model)`` pickles it:
    the copy is of the same class, computes the same, and its hooks use its own gates."""
    gated = build(*HOSTS[0]).eval()
    copied = COPIERS[copier](gated)
    assert type(copied) is type(gated)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(copied(x), gated(x)))
        copied.gates['stage4'].deform_conv.weight.zero_()
        assert not torch.equal(copied(x)[-1], gated(x)[-1])


def test_stages_that_do_not_exist_or_are_not_cnn_stages_are_refused_by_name():
    with pytest.raises(
            ValueError,
            match=r"\['stage9'\] are not modules of CSPNeXt; its stages: "
            r"\['stem', 'stage1'"):
        build('mmdet', HOSTS[0][1], ('stage1', 'stage9'))
    with pytest.raises(ValueError, match='stages: name the modules of CSPNeXt'):
        build('mmdet', HOSTS[0][1], ())
    with pytest.raises(ValueError, match='not a registered model'):
        build('mmdet', dict(type='NoSuchNet'), ('stage1', ))
    hrnet = dict(
        type='HRNet',
        extra=dict(
            stage1=dict(
                num_modules=1,
                num_branches=1,
                block='BOTTLENECK',
                num_blocks=(1, ),
                num_channels=(16, )),
            stage2=dict(
                num_modules=1,
                num_branches=2,
                block='BASIC',
                num_blocks=(1, 1),
                num_channels=(8, 16)),
            stage3=dict(
                num_modules=1,
                num_branches=3,
                block='BASIC',
                num_blocks=(1, 1, 1),
                num_channels=(8, 16, 32)),
            stage4=dict(
                num_modules=1,
                num_branches=4,
                block='BASIC',
                num_blocks=(1, 1, 1, 1),
                num_channels=(8, 16, 32, 64))))
    with pytest.raises(ValueError, match=r"stage 'stage2' of HRNet returns a list, not one"):
        build('mmdet', hrnet, ('stage2', ))
    vit = dict(type='VisionTransformer', arch='deit-tiny', img_size=64, patch_size=16)
    with pytest.raises(ValueError, match=r"VisionTransformer returns a 3-d tensor.*transformers"):
        build('mmpretrain', vit, ('layers.0', ))


def test_with_cp_checkpoints_the_gates_and_changes_nothing():
    """A host with ``with_cp`` (mmdet's RegNet): the gates are recomputed in backward, with the
    same outputs and gradients as without it, and their activations are not kept."""
    from mmdas.analysis.memory import saved_tensor_bytes
    _, cfg, stages = HOSTS[2]
    grads, kept = [], []
    for with_cp in (False, True):
        model = build('mmdet', cfg, stages, with_cp=with_cp)
        model.train()
        x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        kept.append(saved_tensor_bytes(model, lambda: model(x)))
        outs = model(x)
        sum(o.sum() for o in outs).backward()
        grads.append(
            ([o.detach() for o in outs], [p.grad.clone() for p in model.gates.parameters()]))
    (outs, gates), (outs_cp, gates_cp) = grads
    assert kept[1] < kept[0] / 2
    # recomputed: rounding may differ, by far less than 1e-4 of each group's largest value
    for first, second in ((outs, outs_cp), (gates, gates_cp)):
        scale = max(float(t.abs().max()) for t in first)
        for a, b in zip(first, second):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-4 * scale)
