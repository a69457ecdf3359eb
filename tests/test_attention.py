"""Gate maps, Grad-CAM pictures and the sfd tool on checkpoints the tests train themselves."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

import mmdas  # noqa: F401
from mmdas.analysis import build_model, explain, prepare_image, resolve_layers
from mmdas.datasets import make_shapes_coco, make_shapes_folder
from mmdas.engine import build_runner

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DAS_CLS = osp.join(ROOT, 'configs/mmpretrain/demo/das-resnet18-w16_shapes-cls.py')
PLAIN_CLS = osp.join(ROOT, 'configs/mmpretrain/demo/resnet18-w16_shapes-cls.py')
DAS_DET = osp.join(ROOT, 'configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A DAS and a plain demo classifier trained for one epoch on a small synthetic set."""
    root = tmp_path_factory.mktemp('attention')
    data = str(root / 'shapes')
    make_shapes_folder(data, num_train_per_class=8, num_val_per_class=3, size=64)
    checkpoints = {}
    for name, config in (('das', DAS_CLS), ('plain', PLAIN_CLS)):
        cfg = Config.fromfile(config)
        for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
            loader.dataset.data_root = data
        cfg.train_dataloader.batch_size = 8
        cfg.train_cfg.update(max_epochs=1, val_interval=1)
        cfg.param_scheduler.update(T_max=1, end=1)
        cfg.default_hooks.checkpoint.interval = 1
        cfg.work_dir = str(root / name)
        build_runner(cfg).train()
        checkpoints[name] = str(root / name / 'epoch_1.pth')
    return data, checkpoints


def with_data(config: str, data: str) -> str:
    """The config with its data root pointed at ``data`` (written beside the checkpoint)."""
    cfg = Config.fromfile(config)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = data
    path = osp.join(data, osp.basename(config))
    cfg.dump(path)
    return path


def run(tool: str, args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, f'tools/analysis/{tool}'] + args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env)


def test_explain_gives_a_cam_per_layer_and_the_gates_maps(trained):
    data, ckpts = trained
    cfg = Config.fromfile(with_data(DAS_CLS, data))
    model = build_model(cfg, ckpts['das'])
    image = prepare_image(cfg, model, osp.join(data, 'val', 'disc', '00001.png'))
    assert image.inputs.shape == (1, 3, 64, 64) and image.rgb.shape == (64, 64, 3)
    assert abs(float(image.inputs.mean())) < 3  # normalised as in training, not 0..255
    exp = explain(model, image, ['backbone.layer3', 'backbone.layer4'], label=1)
    assert exp.label == 1 and set(exp.cams) == {'backbone.layer3', 'backbone.layer4'}
    for cam in exp.cams.values():
        assert cam.shape == (64, 64) and cam.min() >= 0 and cam.max() <= 1
    # one map per gate, at each stage's resolution, in (0, 1)
    assert [(name, amap.shape)
            for name, amap in exp.gates] == [('backbone.layer1.das_gate', (16, 16)),
                                             ('backbone.layer2.das_gate', (8, 8)),
                                             ('backbone.layer3.das_gate', (4, 4)),
                                             ('backbone.layer4.das_gate', (2, 2))]
    assert all(0 < amap.min() and amap.max() < 1 for _, amap in exp.gates)
    # The gate map is the gate's own A, averaged over channels.
    gate = model.backbone.layer2.das_gate
    seen = {}
    hook = gate.register_forward_hook(lambda m, a, o: seen.setdefault('x', a[0]))
    with torch.no_grad():
        model.extract_feat(image.inputs)
    hook.remove()
    with torch.no_grad():
        expected = gate.attention(seen["x"]).mean(1)[0].numpy()
    np.testing.assert_allclose(exp.gates[1][1], expected, rtol=1e-5)


def test_pictures_for_a_classifier_and_its_plain_twin(trained, tmp_path):
    data, ckpts = trained
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(b'not an image')
    images = [
        osp.join(data, 'val', 'disc', '00000.png'),
        str(corrupt),
        osp.join(data, 'val', 'cross', '00002.png'),
        str(tmp_path / 'missing.png')
    ]
    out = str(tmp_path / 'pictures')
    proc = run('visualize_attention.py', [
        with_data(DAS_CLS, data), ckpts['das'], *images, '--compare',
        with_data(PLAIN_CLS, data), ckpts['plain'], '--out', out
    ])
    assert proc.returncode == 1, proc.stdout + proc.stderr  # skipped images: not a success
    assert sorted(os.listdir(out)) == ['00000.png', '00002.png']
    assert 'wrote 2 picture(s)' in proc.stdout
    assert f'skipped {corrupt}' in proc.stderr and 'missing.png' in proc.stderr
    import cv2
    picture = cv2.imread(osp.join(out, '00000.png'))
    assert picture.shape[0] > 300 and picture.shape[1] > 1000  # two rows of seven panels


def test_a_failure_that_is_not_an_unreadable_image_stops_the_tool(trained, tmp_path):
    """A misconfigured file backend is a real failure: not a "skipped" image, no picture."""
    data, ckpts = trained
    config = tmp_path / 'bad_backend.py'
    config.write_text(f"_base_ = {with_data(DAS_CLS, data)!r}\n"
                      "test_dataloader = dict(dataset=dict(pipeline=[\n"
                      "    dict(type='LoadImageFromFile', backend_args=dict(backend='nope')),\n"
                      "    dict(type='PackInputs')]))\n")
    image = osp.join(data, 'val', 'disc', '00000.png')
    out = tmp_path / 'pictures'
    proc = run('visualize_attention.py', [str(config), ckpts['das'], image, '--out', str(out)])
    assert proc.returncode != 0 and 'skipped' not in proc.stderr
    assert 'nope' in proc.stderr and not list(out.glob('*.png'))


def test_a_checkpoint_that_does_not_fit_and_a_missing_layer_are_named(trained, tmp_path):
    data, ckpts = trained
    image = osp.join(data, 'val', 'disc', '00000.png')
    proc = run('visualize_attention.py',
               [with_data(DAS_CLS, data), ckpts['plain'], image, '--out',
                str(tmp_path)])
    assert proc.returncode != 0
    assert 'does not fit the model of the config' in proc.stderr
    assert 'missing (backbone.layer1.das_gate' in proc.stderr
    cfg = Config.fromfile(with_data(DAS_CLS, data))
    model = build_model(cfg, ckpts['das'])
    with pytest.raises(
            ValueError,
            match=r"\['backbone.layer9'\] not in the model; layers: \["
            r"'data_preprocessor', 'backbone', 'backbone.conv1'"):
        resolve_layers(model, ['backbone.layer3', 'backbone.layer9'])


def test_sfd_tool_prints_both_models(trained):
    data, ckpts = trained
    proc = run('sfd.py', [
        with_data(DAS_CLS, data), ckpts['das'], '--compare',
        with_data(PLAIN_CLS, data), ckpts['plain'], '--num-images', '6'
    ])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if 'backbone.layer' in line]
    assert len(lines) == 4  # two models x two layers
    assert lines[0].split()[0] == 'das-resnet18-w16_shapes-cls'
    assert lines[2].split()[0] == 'resnet18-w16_shapes-cls'


def test_a_detectors_top_detection_is_explained_with_its_box(tmp_path):
    data = str(tmp_path / 'coco')
    make_shapes_coco(data, num_train=2, num_val=2, size=96)
    cfg = Config.fromfile(DAS_DET)
    cfg.model.backbone.init_cfg = None
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmdet')
    detector = MODELS.build(cfg.model)
    torch.save(dict(state_dict=detector.state_dict()), tmp_path / 'det.pth')
    model = build_model(cfg, str(tmp_path / 'det.pth'))
    image = prepare_image(cfg, model, osp.join(data, 'val', 'val_00000.jpg'))
    exp = explain(model, image, ['backbone.layer3', 'backbone.layer4'])
    assert exp.box is not None and exp.box.shape == (4, ) and 0 <= exp.label < 4
    assert all(cam.shape == image.rgb.shape[:2] for cam in exp.cams.values())
    assert len(exp.gates) == 4
