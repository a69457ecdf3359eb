"""ONNX export: every deformable conv becomes one standard DeformConv node, and ONNX Runtime
computes what PyTorch computes (both of torch's exporters, every deform_impl, free shapes)."""
import os.path as osp

import numpy as np
import onnx
import pytest
import torch

import mmdas  # noqa: F401
from mmdas.deployment import (compare_outputs, export_onnx, nonstandard_operators,
                              onnxruntime_outputs, operator_types)
from mmdas.models import DASGate, DASMobileNetV2, DASResNet
from mmdas.ops import DispatchingDeformConv2dPack, mmcv_ops_available
from utils import ROOT, load_tool, run_main

EXPORTERS = ['dynamo', 'torchscript']
IMPLS = [
    'auto', 'torch',
    pytest.param(
        'mmcv', marks=pytest.mark.skipif(not mmcv_ops_available(), reason='mmcv built without ops'))
]


def deform(module: torch.nn.Module, scale: float = 0.3) -> torch.nn.Module:
    """Non-zero offsets (and mask logits), so that the deformation matters."""
    torch.manual_seed(1)
    for m in module.modules():
        if isinstance(m, DispatchingDeformConv2dPack):
            torch.nn.init.normal_(m.conv_offset.weight, 0, scale)
            torch.nn.init.normal_(m.conv_offset.bias, 0, scale)
    return module.eval()


def deform_convs(path) -> int:
    return operator_types(str(path)).count(('', 'DeformConv'))


def assert_matches(outputs, expected, rtol=1e-4, atol=1e-5):
    expected = expected if isinstance(expected, (tuple, list)) else (expected, )
    checks = compare_outputs(expected, outputs, [str(i) for i in range(len(expected))], rtol, atol)
    assert all(c.ok for c in checks), checks


@pytest.mark.slow
@pytest.mark.parametrize('exporter', EXPORTERS)
@pytest.mark.parametrize('impl', IMPLS)
def test_gate_exports_as_one_deform_conv_with_plain_torch_onnx_export(impl, exporter, tmp_path):
    """What a user types: torch.onnx.export(gate, x, path[, dynamo=False]), nothing special."""
    gate = deform(DASGate(16, deform_impl=impl))
    x = torch.randn(2, 16, 9, 11)
    path = str(tmp_path / 'gate.onnx')
    if exporter == 'dynamo':
        torch.onnx.export(gate, (x, ), path, verbose=False)
    else:
        torch.onnx.export(gate, (x, ), path, dynamo=False)
    assert deform_convs(path) == 1 and not nonstandard_operators(path)
    with torch.no_grad():
        expected = gate(x)
    out = onnxruntime_outputs(path, x)[0]
    assert_matches([out], expected)
    # The offsets do move the samples: zeroing them changes the output far beyond the tolerance.
    with torch.no_grad():
        gate.deform_conv.conv_offset.weight.zero_()
        gate.deform_conv.conv_offset.bias.zero_()
        assert (gate(x) - expected).abs().max() > 1e-2


OP_CASES = [
    dict(),
    dict(stride=2),
    dict(dilation=2, padding=2),
    dict(groups=2),
    dict(deform_groups=2),
    dict(groups=2, deform_groups=4, stride=(2, 1)),
    dict(kernel_size=(3, 5), padding=(1, 2)),
    dict(kernel_size=1, padding=0),
    dict(bias=False)
]


@pytest.mark.slow
@pytest.mark.parametrize('exporter', EXPORTERS)
@pytest.mark.parametrize(
    'case', OP_CASES, ids=lambda c: '-'.join(f'{k}{v}' for k, v in c.items()) or 'default')
def test_the_deformable_conv_exports_with_its_own_arguments(case, exporter, tmp_path):
    layer = deform(DispatchingDeformConv2dPack(8, 6, **{'padding': 1, **case}), 1.0)
    x = torch.randn(2, 8, 9, 10)
    path = export_onnx(layer, x, str(tmp_path / 'dcn.onnx'), exporter)
    node = next(n for n in onnx.load(path).graph.node if n.op_type == 'DeformConv')
    attrs = {a.name: list(a.ints) or a.i for a in node.attribute}
    assert attrs['strides'] == list(layer.stride) and attrs['dilations'] == list(layer.dilation)
    assert attrs['group'] == layer.groups and attrs['offset_group'] == layer.deform_groups
    with torch.no_grad():
        assert_matches(onnxruntime_outputs(path, x), layer(x))


BACKBONES = {
    'DAS-R18': lambda: DASResNet(18),
    'DAS-R50': lambda: DASResNet(50),
    'DAS-MobileNetV2': lambda: DASMobileNetV2(out_indices=(1, 2, 4, 7)),
}


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_backbones_export_with_free_batch_and_size(name, tmp_path):
    """Exported at 64 px, run at other sizes and batch sizes, 1x1 maps at stride 32 included,
    through the TorchScript exporter (the dynamo exporter's translation of the gate and of the
    deformable conv are tested above; a whole backbone through it took 12-33 s here)."""
    exporter = 'torchscript'
    torch.manual_seed(0)
    model = BACKBONES[name]()
    model.init_weights()
    deform(model, 0.05)
    path = export_onnx(
        model,
        torch.randn(1, 3, 64, 64),
        str(tmp_path / 'backbone.onnx'),
        exporter,
        dynamic_batch=True,
        dynamic_shape=True,
        output_names=[f'out{i}' for i in range(4)])
    assert deform_convs(path) == 4 and not nonstandard_operators(path)
    for batch, h, w in [(1, 64, 64), (2, 48, 80), (1, 32, 32), (3, 97, 65), (1, 8, 8)]:
        x = torch.randn(batch, 3, h, w)
        with torch.no_grad():
            assert_matches(onnxruntime_outputs(path, x), model(x))


def test_a_graph_that_computes_something_else_is_caught(tmp_path):
    """The comparison flags a file whose deformable conv weight was changed afterwards (by
    noise: a scaling would be undone by the LayerNorm that follows)."""
    gate = deform(DASGate(8))
    x = torch.randn(1, 8, 6, 6)
    path = export_onnx(gate, x, str(tmp_path / 'gate.onnx'))
    proto = onnx.load(path)
    weight = next(t for t in proto.graph.initializer if t.name.endswith('deform_conv.weight'))
    values = onnx.numpy_helper.to_array(weight).copy()
    noise = np.random.default_rng(0).normal(0, 0.1, values.shape).astype(values.dtype)
    weight.CopyFrom(onnx.numpy_helper.from_array(values + noise, weight.name))
    onnx.save(proto, path)
    with torch.no_grad():
        checks = compare_outputs([gate(x)], onnxruntime_outputs(path, x), ['out'])
    assert not checks[0].ok


def test_an_opset_without_deform_conv_is_refused_with_the_one_that_works(tmp_path):
    gate = DASGate(8).eval()
    x = torch.randn(1, 8, 6, 6)
    with pytest.raises(ValueError, match='needs opset >= 19'):
        export_onnx(gate, x, str(tmp_path / 'a.onnx'), opset=18)
    with pytest.raises(Exception, match=r'needs opset_version >= 19; got opset_version=17'):
        torch.onnx.export(gate, (x, ), str(tmp_path / 'b.onnx'), dynamo=False, opset_version=17)


def export_tool(args):
    return run_main('tools/deployment/pytorch2onnx.py', args)


def write_checkpoint(config: str, path, scope: str) -> None:
    """A checkpoint of the config's model with every tensor moved off its init."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope
    cfg = Config.fromfile(osp.join(ROOT, config))
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    torch.manual_seed(0)
    for name, p in model.state_dict().items():
        if p.dtype.is_floating_point:
            p.add_(torch.randn_like(p) * (0.05 if 'conv_offset' in name else 0.02))
    torch.save(dict(state_dict=model.state_dict()), path)


@pytest.mark.slow
def test_tool_exports_a_das_classifier_whole_and_checks_it(tmp_path):
    config = 'configs/mmpretrain/demo/das-resnet18-w16_shapes-cls.py'
    write_checkpoint(config, tmp_path / 'cls.pth', 'mmpretrain')
    out = str(tmp_path / 'cls.onnx')
    proc = export_tool([
        config, '--checkpoint',
        str(tmp_path / 'cls.pth'), '--shape', '64', '64', '--out', out, '--dynamic-batch',
        '--dynamic-shape'
    ])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert deform_convs(out) == 4 and not nonstandard_operators(out)
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert meta['mean'] == '[127.5, 127.5, 127.5]' and 'RGB' in meta['channel_order']
    # The same check of a copy with one weight changed (noise on a DeformConv's weight) fails,
    # naming the output and the input size.
    proto = onnx.load(out)
    node = next(n for n in proto.graph.node if n.op_type == 'DeformConv')
    weight = next(t for t in proto.graph.initializer if t.name == node.input[1])
    values = onnx.numpy_helper.to_array(weight)
    noise = np.random.default_rng(0).normal(0, 0.1, values.shape).astype(values.dtype)
    weight.CopyFrom(onnx.numpy_helper.from_array(values + noise, weight.name))
    onnx.save(proto, str(tmp_path / 'wrong.onnx'))
    from mmengine.config import Config

    from mmdas.deployment import build_export_target
    target = build_export_target(Config.fromfile(osp.join(ROOT, config)), str(tmp_path / 'cls.pth'))
    check = load_tool('tools/deployment/pytorch2onnx.py').check_tensor_file
    names, shapes = target.output_names, [(1, 64, 64)]
    assert check(target.module, out, names, shapes, 1e-4, 1e-5) == []
    failures = check(target.module, str(tmp_path / 'wrong.onnx'), names, shapes, 1e-4, 1e-5)
    assert len(failures) == 1 and failures[0].startswith('scores at 1x3x64x64 differs by')


@pytest.mark.slow
def test_tool_exports_a_das_detector_backbone_and_neck(tmp_path):
    config = 'configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py'
    write_checkpoint(config, tmp_path / 'det.pth', 'mmdet')
    proc = export_tool([
        config, '--checkpoint',
        str(tmp_path / 'det.pth'), '--shape', '96', '96', '--out',
        str(tmp_path / 'det.onnx'), '--exporter', 'torchscript', '--dynamic-shape',
        '--backbone-only'
    ])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    feats = onnxruntime_outputs(str(tmp_path / 'det.onnx'), torch.zeros(1, 3, 32, 32))
    assert len(feats) == 5 and feats[3].shape == (1, 64, 1, 1)  # free size: 1x1 at stride 32


@pytest.mark.slow
def test_tool_names_the_keys_of_a_checkpoint_that_does_not_fit(tmp_path):
    torch.save(dict(state_dict={'backbone.conv1.weight': torch.zeros(1)}), tmp_path / 'x.pth')
    proc = export_tool([
        'configs/mmpretrain/demo/das-resnet18-w16_shapes-cls.py', '--checkpoint',
        str(tmp_path / 'x.pth'), '--out',
        str(tmp_path / 'x.onnx')
    ])
    assert proc.returncode != 0
    assert "does not fit the model of the config" in proc.stderr
    assert 'missing (backbone.bn1.weight' in proc.stderr and 'with another shape' in proc.stderr
