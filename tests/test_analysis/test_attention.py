"""Gate maps, Grad-CAM pictures and the sfd tool on checkpoints the tests train themselves."""
import os
import os.path as osp
import tempfile

import numpy as np
import pytest
import torch
from mmengine.config import Config

import mmdas  # noqa: F401
from mmdas.analysis import explain, prepare_image, resolve_layers
from mmdas.apis import init_model
from mmdas.datasets import shapes_cfg
from mmdas.engine import build_runner
from utils import ROOT, run_main

DAS_CLS = osp.join(ROOT, 'configs/mmpretrain/demo/das-resnet18-w16_shapes-cls.py')
PLAIN_CLS = osp.join(ROOT, 'configs/mmpretrain/demo/resnet18-w16_shapes-cls.py')
DAS_DET = osp.join(ROOT, 'configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py')


@pytest.fixture(scope='module')
def trained(tmp_path_factory, cls_shapes_64):
    """A DAS and a plain demo classifier trained for one epoch on a small synthetic set."""
    root = tmp_path_factory.mktemp('attention')
    checkpoints = {}
    for name, config in (('das', DAS_CLS), ('plain', PLAIN_CLS)):
        cfg = shapes_cfg(config, cls_shapes_64, seed=0, length=1)
        cfg.train_dataloader.batch_size = 8
        cfg.work_dir = str(root / name)
        build_runner(cfg).train()
        checkpoints[name] = str(root / name / 'epoch_1.pth')
    return cls_shapes_64, checkpoints


def with_data(config: str, data: str) -> str:
    """The config with its data root pointed at ``data``, written to a file of its own."""
    path = osp.join(tempfile.mkdtemp(), osp.basename(config))
    shapes_cfg(config, data, seed=0).dump(path)
    return path


def run(tool: str, args):
    return run_main(f'tools/analysis/{tool}', args)


@pytest.mark.slow
def test_explain_gives_a_cam_per_layer_and_the_gates_maps(trained):
    data, ckpts = trained
    cfg = Config.fromfile(with_data(DAS_CLS, data))
    model = init_model(cfg, ckpts['das'])
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


@pytest.mark.slow
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
    assert f'skipped {corrupt}' in proc.stderr and 'missing.png' in proc.stderr
    import cv2
    picture = cv2.imread(osp.join(out, '00000.png'))
    assert picture.shape[0] > 300 and picture.shape[1] > 1000  # two rows of seven panels


@pytest.mark.slow
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


@pytest.mark.slow
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
    model = init_model(cfg, ckpts['das'])
    with pytest.raises(
            ValueError,
            match=r"\['backbone.layer9'\] not in the model; layers: \["
            r"'data_preprocessor', 'backbone', 'backbone.conv1'"):
        resolve_layers(model, ['backbone.layer3', 'backbone.layer9'])


@pytest.mark.slow
def test_sfd_tool_prints_both_models(trained):
    data, ckpts = trained
    proc = run('sfd.py', [
        with_data(DAS_CLS, data), ckpts['das'], '--compare',
        with_data(PLAIN_CLS, data), ckpts['plain'], '--num-images', '6'
    ])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if 'backbone.layer' in line]
    assert len(lines) == 4  # two models x two layers
    for line in lines:  # a score over images, each image scored or counted as undefined
        assert 'undefined on every image' not in line, line
        scored = int(line.split('(n=')[1].split(',')[0].rstrip(')'))
        undefined = int(line.split('undefined: ')[1].rstrip(')')) if 'undefined:' in line else 0
        assert scored >= 1 and scored + undefined == 6, line
    assert lines[0].split()[0] == 'das-resnet18-w16_shapes-cls'
    assert lines[2].split()[0] == 'resnet18-w16_shapes-cls'


def test_a_detectors_top_detection_is_explained_with_its_box(tmp_path, coco_shapes):
    data = coco_shapes
    cfg = Config.fromfile(DAS_DET)
    cfg.model.backbone.init_cfg = None
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmdet')
    detector = MODELS.build(cfg.model)
    torch.save(dict(state_dict=detector.state_dict()), tmp_path / 'det.pth')
    model = init_model(cfg, str(tmp_path / 'det.pth'))
    image = prepare_image(cfg, model, osp.join(data, 'val', 'val_00000.jpg'))
    exp = explain(model, image, ['backbone.layer3', 'backbone.layer4'])
    assert exp.box is not None and exp.box.shape == (4, ) and 0 <= exp.label < 4
    assert all(cam.shape == image.rgb.shape[:2] for cam in exp.cams.values())
    assert len(exp.gates) == 4


def test_maps_of_a_padded_detector_input_are_in_the_image_frame(tmp_path):
    """A 120x160 image enters the demo detector padded to 128x160 (pad_size_divisor=32): the
    Grad-CAMs, gate maps and sfd regions all live in the unpadded 120x160 frame, and a known
    object stays where it is in the picture."""
    import cv2

    from mmdas.analysis import sfd_score
    from mmdas.analysis.attention import to_image_frame
    picture = np.full((120, 160, 3), 40, np.uint8)
    picture[70:110, 110:150] = 255  # the object, near the bottom-right corner
    cv2.imwrite(str(tmp_path / 'img.png'), picture)
    cfg = Config.fromfile(DAS_DET)
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), tmp_path / 'det.pth')
    model = init_model(cfg, str(tmp_path / 'det.pth'))
    model.test_cfg.rcnn.score_thr = 0.0  # an untrained head: explain whatever scores highest
    image = prepare_image(cfg, model, str(tmp_path / 'img.png'))
    assert image.inputs.shape[-2:] == (128, 160) and image.rgb.shape == (120, 160, 3)
    # the frame rule on a map whose content is known: the input itself, padding included
    brightness = to_image_frame(image.inputs[0].mean(0).numpy(), image, rescale=True)
    assert brightness.shape == (120, 160) and brightness.max() == 1.0
    rows, cols = np.nonzero(brightness > 0.9)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (70, 109, 110, 149)
    exp = explain(model, image, ['backbone.layer3', 'backbone.layer4'])
    for cam in exp.cams.values():
        assert cam.shape == (120, 160) and cam.min() == 0.0 and cam.max() == 1.0
    assert [amap.shape for _, amap in exp.gates] == [(30, 40), (15, 20), (8, 10), (4, 5)]
    region = np.zeros((120, 160), bool)
    region[70:110, 110:150] = True
    for cam in exp.cams.values():
        assert 0.0 <= sfd_score(cam, region) <= 1.0  # one shape: no mismatch to raise


@pytest.mark.slow
def test_the_tools_read_a_padded_detector_input_in_the_image_frame(tmp_path):
    """sfd.py and visualize_attention.py on a detector whose 120x160 test images are padded to
    128x160: before, sfd stopped on a CAM of 128x160 against a 120x160 object region."""
    import json

    import cv2
    from mmengine.registry import MODELS, init_default_scope
    root = tmp_path / 'data'
    (root / 'test').mkdir(parents=True)
    (root / 'annotations').mkdir()
    images, annotations = [], []
    for i in range(3):
        picture = np.full((120, 160, 3), 40, np.uint8)
        x, y = 20 + 40 * i, 30 + 20 * i
        picture[y:y + 40, x:x + 40] = 230
        name = f'{i}.png'
        cv2.imwrite(str(root / 'test' / name), picture)
        images.append(dict(id=i + 1, file_name=name, width=160, height=120))
        annotations.append(
            dict(
                id=i + 1,
                image_id=i + 1,
                category_id=1,
                bbox=[x, y, 40, 40],
                area=1600,
                iscrowd=0,
                segmentation=[[x, y, x + 40, y, x + 40, y + 40, x, y + 40]]))
    categories = [
        dict(id=k + 1, name=n) for k, n in enumerate(('square', 'disc', 'triangle', 'cross'))
    ]
    with open(root / 'annotations' / 'instances_test.json', 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    cfg = shapes_cfg(DAS_DET, str(root), seed=0)
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # an untrained head: explain its top detection
    config = str(tmp_path / 'det.py')
    cfg.dump(config)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), tmp_path / 'det.pth')
    proc = run('sfd.py', [config, str(tmp_path / 'det.pth'), '--num-images', '3'])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if 'backbone.layer' in line]
    assert len(lines) == 2 and all('n=' in line or 'undefined' in line for line in lines)
    out = tmp_path / 'pictures'
    proc = run(
        'visualize_attention.py',
        [config, str(tmp_path / 'det.pth'),
         str(root / 'test' / '0.png'), '--out',
         str(out)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [p for p in os.listdir(out) if p.endswith('.png')]
