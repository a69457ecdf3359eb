"""Ordinary ResNet / MobileNetV2 weights load into DAS backbones; only gate tensors are new."""
import pytest
import torch
import torchvision
from mmdet.models.backbones import MobileNetV2, ResNet
from mmpretrain.registry import MODELS as CLS

import mmdas  # noqa: F401
from mmdas.models import DASMobileNetV2, DASResNet


def assert_loaded(model, state, prefix=''):
    own = model.state_dict()
    non_gate = [k for k in own if '.das_gate.' not in k]
    for key in non_gate:
        assert torch.equal(own[key], state[prefix + key]), key
    assert [k for k in own if k not in non_gate]  # the model has gates
    return non_gate


def test_torchvision_resnet50_state_dict(tmp_path, caplog):
    state = torchvision.models.resnet50().state_dict()
    torch.save(state, tmp_path / 'tv_r50.pth')
    model = DASResNet(50, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'tv_r50.pth')))
    model.init_weights()
    assert_loaded(model, state)
    gate = model.layer1.das_gate
    assert gate.deform_conv.conv_offset.weight.abs().sum() == 0  # gates keep their fresh init


def test_mmdet_detector_checkpoint_with_prefix(tmp_path):
    host = ResNet(50)
    state = {f'backbone.{k}': v for k, v in host.state_dict().items()}
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)
    torch.save(dict(state_dict=state, meta=dict(epoch=12)), tmp_path / 'det.pth')
    model = DASResNet(
        50,
        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'det.pth'), prefix='backbone.'))
    model.init_weights()
    assert_loaded(model, state, 'backbone.')


def test_mmpretrain_classifier_checkpoint(tmp_path, scope):
    with scope('mmpretrain'):
        classifier = CLS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(type='ResNet', depth=18),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=10, in_channels=512)))
    state = classifier.state_dict()
    torch.save(dict(state_dict=state), tmp_path / 'cls.pth')
    with scope('mmpretrain'):
        cls_flavour = CLS.get('DASResNet')
    for flavour in (DASResNet, cls_flavour):
        model = flavour(
            18,
            init_cfg=dict(
                type='Pretrained', checkpoint=str(tmp_path / 'cls.pth'), prefix='backbone.'))
        model.init_weights()
        assert_loaded(model, state, 'backbone.')


def test_das_trained_under_mmpretrain_loads_into_mmdet_das_with_every_tensor(tmp_path, scope):
    with scope('mmpretrain'):
        classifier = CLS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(type='DASResNet', depth=18),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=10, in_channels=512)))
    assert not isinstance(classifier.backbone, DASResNet)  # mmpretrain's flavour
    for p in classifier.parameters():  # "trained": every tensor differs from a fresh init
        p.data.normal_()
    torch.save(dict(state_dict=classifier.state_dict()), tmp_path / 'das_cls.pth')
    model = DASResNet(
        18,
        init_cfg=dict(
            type='Pretrained', checkpoint=str(tmp_path / 'das_cls.pth'), prefix='backbone.'))
    model.init_weights()
    state = classifier.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[f'backbone.{key}']), key


@pytest.mark.parametrize('host_scope', ['mmdet', 'mmpretrain'])
def test_mobilenet_v2_checkpoints(tmp_path, host_scope, scope):
    with scope('mmpretrain'):
        host = MobileNetV2() if host_scope == 'mmdet' else CLS.build(dict(type='MobileNetV2'))
    state = {f'backbone.{k}': v for k, v in host.state_dict().items()}
    torch.save(dict(state_dict=state), tmp_path / 'mbv2.pth')
    cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'mbv2.pth'), prefix='backbone.')
    with scope('mmpretrain'):
        cls_model = CLS.build(dict(type='DASMobileNetV2', init_cfg=cfg))
    for model in (DASMobileNetV2(init_cfg=cfg), cls_model):
        model.init_weights()
        # Same tensors; mmdet and mmpretrain name the block convs differently.
        converted = model.convert_pretrained({k[len('backbone.'):]: v for k, v in state.items()})
        assert len(assert_loaded(model, converted)) == len(state)


@pytest.mark.slow
def test_wrong_architecture_and_missing_file_are_named(tmp_path):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / 'r18.pth')
    model = DASResNet(50, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'r18.pth')))
    with pytest.raises(ValueError, match=r"r18.pth' does not fit DASResNet: .*tensors missing"):
        model.init_weights()
    missing = DASResNet(18, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'nope.pth')))
    with pytest.raises(FileNotFoundError, match=r"init_cfg checkpoint '.*nope.pth' does not exist"):
        missing.init_weights()
    wide = torchvision.models.wide_resnet50_2().state_dict()
    torch.save(wide, tmp_path / 'wide.pth')
    model = DASResNet(50, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'wide.pth')))
    with pytest.raises(ValueError, match='with another shape'):
        model.init_weights()
