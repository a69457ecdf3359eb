"""An experiment is what its config says: overrides apply or raise, fresh gates learn their
norm statistics under the host's ``norm_eval``, tools stop on real failures, export says which
weights it exports, user files load as data."""
import os.path as osp
import pickle

import pytest
import torch
from mmengine.config import Config

import mmdas  # noqa: F401
from utils import ROOT

DAS_R50 = osp.join(ROOT, 'configs/das/faster-rcnn_das-r50_fpn_1x_coco.py')


def backbone_of(cfg: Config, scope: str = 'mmdet'):
    from mmengine.registry import MODELS, DefaultScope
    backbone = dict(cfg.model.backbone, init_cfg=None)  # no download here
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(backbone)


def gate_widths(backbone):
    return [gate.pointwise.out_channels for gate in backbone.stage_gates()]


def test_cfg_options_alpha_on_a_shipped_config_is_never_dropped():
    """What ``--cfg-options model.backbone.alpha=0.5`` does: merge, build, look at the gates."""
    cfg = Config.fromfile(DAS_R50)
    cfg.merge_from_dict({'model.backbone.alpha': 0.5})
    with pytest.raises(ValueError, match=r'alpha=0.5 on the backbone and alpha=0.2 inside gate'):
        backbone_of(cfg)
    cfg = Config.fromfile(DAS_R50)
    cfg.merge_from_dict({'model.backbone.gate.alpha': 0.5})
    assert gate_widths(backbone_of(cfg)) == [128, 256, 512, 1024]  # round(0.5 * c)
    assert gate_widths(backbone_of(Config.fromfile(DAS_R50))) == [51, 102, 205, 410]


@pytest.mark.parametrize('scope, backbone', [
    ('mmdet', dict(type='DASResNet', depth=18)),
    ('mmdet', dict(type='DASMobileNetV2', widen_factor=0.5)),
    ('mmpretrain', dict(type='DASResNet', depth=18)),
    ('mmpretrain', dict(type='DASMobileNetV2', widen_factor=0.5)),
])
def test_a_backbone_level_gate_argument_applies_or_raises(scope, backbone):
    from mmengine.registry import MODELS, DefaultScope
    with DefaultScope.overwrite_default_scope(scope):
        # given once, at either level: applied
        for cfg in (dict(backbone, alpha=0.5, deform_impl='mmcv'),
                    dict(backbone, gate=dict(type='DASGate', alpha=0.5, deform_impl='mmcv')),
                    dict(backbone, gate=dict(type='DASGate'), alpha=0.5, deform_impl='mmcv')):
            model = MODELS.build(cfg)
            for gate in model.stage_gates():
                assert gate.alpha == 0.5 and gate.deform_conv.impl == 'mmcv', cfg
        # the same value twice: fine; two values: both named
        MODELS.build(dict(backbone, gate=dict(type='DASGate', alpha=0.5), alpha=0.5))
        with pytest.raises(
                ValueError,
                match=r"deform_impl='mmcv' on the backbone and "
                r"deform_impl='torch' inside gate"):
            MODELS.build(
                dict(backbone, gate=dict(type='DASGate', deform_impl='torch'), deform_impl='mmcv'))


@pytest.mark.parametrize(
    'config', ['faster-rcnn_cbam-r50_fpn_1x_coco.py', 'faster-rcnn_triplet-r50_fpn_1x_coco.py'])
def test_comparator_gates_learn_their_batchnorm_statistics_under_norm_eval(config):
    from torch.nn.modules.batchnorm import _BatchNorm
    cfg = Config.fromfile(osp.join(ROOT, 'configs/gates', config))
    assert cfg.model.backbone.norm_eval  # what every COCO config does
    backbone = backbone_of(cfg)
    backbone.init_weights()
    gate_norms = [
        m for g in backbone.stage_gates() for m in g.modules() if isinstance(m, _BatchNorm)
    ]
    gate_ids = {id(m) for m in gate_norms}
    host_norms = [
        m for m in backbone.modules() if isinstance(m, _BatchNorm) and id(m) not in gate_ids
    ]
    assert gate_norms and host_norms
    host_before = [m.running_mean.clone() for m in host_norms]
    backbone.train()
    assert all(m.training for m in gate_norms)
    assert not any(m.training for m in host_norms)
    optimizer = torch.optim.SGD([p for p in backbone.parameters() if p.requires_grad], lr=0.01)
    sum(o.mean() for o in backbone(torch.randn(2, 3, 64, 64))).backward()  # one training step
    optimizer.step()
    for m in gate_norms:
        assert m.num_batches_tracked == 1 and (m.running_mean != 0).any()
    for m, before in zip(host_norms, host_before):
        assert torch.equal(m.running_mean, before)


def test_gates_frozen_with_their_stage_stay_in_eval():
    from mmdet.models.backbones import ResNet  # noqa: F401 (registers mmdet's ResNet)
    from mmengine.registry import MODELS, DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(
            dict(
                type='DASResNet',
                depth=18,
                frozen_stages=2,
                norm_eval=True,
                freeze_gates=True,
                gate=dict(type='CBAMGate')))
    model.train()
    modes = [gate.training for gate in model.stage_gates()]
    assert modes == [False, False, True, True]
    assert not any(p.requires_grad for g in model.stage_gates()[:2] for p in g.parameters())


def test_load_image_or_skip_skips_unreadable_files_only(tmp_path):
    from mmdas.datasets import LoadImageOrSkip
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(b'not an image')
    assert LoadImageOrSkip()(dict(img_path=str(corrupt))) is None
    assert LoadImageOrSkip()(dict(img_path=str(tmp_path / 'missing.png'))) is None
    misconfigured = LoadImageOrSkip(backend_args=dict(backend='no_such_backend'))
    with pytest.raises(Exception) as err:
        misconfigured(dict(img_path=str(corrupt)))
    assert not isinstance(err.value, (OSError, AssertionError))


def test_export_without_a_checkpoint_gives_the_configs_init_weights():
    from mmdas.deployment.targets import build_export_target
    cfg = Config.fromfile(DAS_R50)
    target = build_export_target(cfg)
    assert target.skipped_pretrained == ['model.backbone: torchvision://resnet50']
    assert "init_weights" in target.weights
    backbone = target.module.backbone
    # mmdet's ResNet init: zero_init_residual sets every Bottleneck's last norm to 0 (PyTorch's
    # default init would leave 1); the gates' offset convs start at 0
    assert (backbone.layer1[0].norm3.weight == 0).all()
    for gate in backbone.stage_gates():
        assert (gate.deform_conv.conv_offset.weight == 0).all()


def test_a_users_checkpoint_is_loaded_as_data_only(tmp_path):
    from mmdas.utils import read_state_dict
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict=dict(w=torch.zeros(1)), payload=Exploit()), path)
    with pytest.raises(pickle.UnpicklingError, match='[Ww]eights only'):
        read_state_dict(path)
    torch.save(dict(state_dict=dict(w=torch.ones(2))), path)
    assert torch.equal(read_state_dict(path)['w'], torch.ones(2))


class Exploit:
    """An object ``torch.load(weights_only=False)`` would rebuild by running code."""

    def __reduce__(self):
        return (print, ('code ran while loading a checkpoint', ))


def test_setup_states_the_tested_torch_floor():
    from mmdas.version import FRAMEWORKS
    low = FRAMEWORKS['torch'][1]
    pinned = [
        line.split('==')[1].strip() for line in open(osp.join(ROOT, 'requirements/build.txt'))
        if line.startswith('torch==')
    ][0]
    assert low.split('.')[:2] == pinned.split('.')[:2]
