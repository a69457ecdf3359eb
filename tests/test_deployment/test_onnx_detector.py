"""The whole detector in ONNX Runtime against mmdet's own test path: the detector configs we
ship (Faster, Mask and Cascade R-CNN, RetinaNet, FCOS, RTMDet) and a demo-width twin of each family,
standard operators only, masks pasted as mmdet pastes them, a tool that exits 1 on a mismatch,
and inference without torch or mmdas."""
import os
import os.path as osp

import cv2
import numpy as np
import onnxruntime
import pytest
import torch
from mmengine.config import Config

import mmdas  # noqa: F401
from mmdas.apis import init_model
from mmdas.deployment import nonstandard_operators, operator_types
from mmdas.deployment.detector import export_detector, mmdet_detections, onnx_detections
from mmdas.deployment.parity import (Report, Tolerance, compare_masks, compare_sets,
                                     compare_with_mmdet, probed_session)
from utils import ROOT, family_twin, load_tool, realtime_twin, run_main

DEMO = 'configs/das/demo/faster-rcnn_das-r18-w16_fpn_shapes.py'
# the graph's RoiAlign and NonMaxSuppression nodes in each family: one RoiAlign per FPN level
# and box head (and mask head), one NMS for the RPN and one for the boxes (one for a dense head)
NODES = dict(
    faster=(4, 2), mask=(8, 2), cascade=(12, 2), retinanet=(0, 1), fcos=(0, 1), rtmdet=(0, 1))
#: (config, DeformConv nodes, family): the detector configs we ship, and mmdet's plain twin.
#: Not YOLOX, which the export refuses by name (test_a_family_the_export_does_not_write_...),
#: nor DAS-R101, the DAS-R50 config with ``depth=101`` (the same classes and graph pattern, 17
#: more blocks in layer3; it builds in test_metafiles.py).
#: The full-width ones are ``full_width`` and ``slow``: make test's second pass (scalar
#: kernels) checks each family through the demo detector and the demo-width twins instead.
CONFIGS = [pytest.param(DEMO, 4, 'faster', id=DEMO)] + [
    pytest.param(*case, marks=(pytest.mark.slow, pytest.mark.full_width), id=case[0]) for case in (
        ('configs/das/faster-rcnn_das-r50_fpn_1x_coco.py', 4, 'faster'),
        ('configs/das/faster-rcnn_das-x101-32x4d_fpn_1x_coco.py', 4, 'faster'),
        ('configs/das/faster-rcnn_das-mobilenetv2_fpn_1x_coco.py', 4, 'faster'),
        # the plugin: one gate per Bottleneck of stages 2-4 (4 + 6 + 3 blocks)
        ('configs/das/faster-rcnn_r50-das-plugin_fpn_1x_coco.py', 13, 'faster'),
        ('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 0, 'faster'),
        ('configs/das/mask-rcnn_das-r50_fpn_1x_coco.py', 4, 'mask'),
        ('configs/das/cascade-rcnn_das-r50_fpn_1x_coco.py', 4, 'cascade'),
        ('configs/das/retinanet_das-r50_fpn_1x_coco.py', 4, 'retinanet'),
        ('configs/das/fcos_das-r50-caffe_fpn_gn-head_1x_coco.py', 4, 'fcos'),
        # RTMDet: its test pipeline pads to a fixed size with 114
        ('configs/das/rtmdet_das-tiny_8xb32-300e_coco.py', 4, 'rtmdet'),
    )
]
# mmdet's config of each family, for its demo-width twin (tests/utils.py: family_twin)
TWINS = dict(
    mask='mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    cascade='cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py',
    retinanet='retinanet/retinanet_r50_fpn_1x_coco.py',
    fcos='fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py')
# the classifiers a written checkpoint spreads out: RPN, box heads (Cascade's three), dense heads
CLASSIFIERS = ('rpn_cls', 'fc_cls', 'retina_cls', 'conv_cls', 'rtm_cls')


def small_cfg(config: str, data: str) -> Config:
    """The config at a small test scale (128 px), its test set pointed at ``data``."""
    if config.startswith('mmdet::'):
        from mmengine.hub import get_config
        cfg = get_config(config)
    else:
        cfg = Config.fromfile(osp.join(ROOT, config))
    resize = next(t for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'Resize')
    if config != DEMO:
        resize['scale'] = (128, 128)
        for step in cfg.test_dataloader.dataset.pipeline:
            if step['type'] == 'Pad':
                step['size'] = (128, 128)
    cfg.test_dataloader.dataset.data_root = osp.join(data, '')
    return cfg


def written_checkpoint(cfg: Config, path: str, images) -> str:
    """A checkpoint of the config's model that behaves like a trained one where it matters
    here: batch-norm statistics measured on ``images`` (without them the hosts' own init lets
    MobileNetV2's features vanish layer by layer, and every score ties), and classifiers that
    give spread-out scores (the initial ones score every box alike, below the threshold); the
    box regressions keep their near-zero init, so boxes stay anchor- and proposal-shaped."""
    from torch.nn.modules.batchnorm import _BatchNorm
    torch.manual_seed(0)  # the same weights whatever ran before (ties depend on them)
    model = init_model(cfg)
    batch = torch.stack(
        [torch.from_numpy(cv2.resize(i, (128, 128))).permute(2, 0, 1).float() for i in images])
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    for norm in norms:  # a cumulative average over the batch: its statistics
        norm.train()
        norm.momentum = None
        norm.reset_running_stats()
    with torch.no_grad():
        model.extract_feat(model.data_preprocessor(dict(inputs=list(batch)), False)['inputs'])
    generator = torch.Generator().manual_seed(0)
    for name, param in model.named_parameters():
        if any(part in name.split('.') for part in CLASSIFIERS):
            param.data.normal_(0, 0.03, generator=generator)
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def shapes_images(data: str, count: int = 4):
    return [cv2.imread(osp.join(data, 'val', f'val_0000{i}.jpg')) for i in range(count)]


def rounding_tolerance(model, image) -> Tolerance:
    """The check's default tolerances, or wider for a model whose own float32 rounding is
    larger than they assume (a test checkpoint's normalisation measured on four images can
    amplify it: ResNeXt-101 at 128 px): 10x the largest difference of its dense head's
    outputs in float32 from float64 (PyTorch, on this CPU), relative to their scale (for boxes,
    times the image's size)."""
    import copy

    from mmdas.deployment.detector import preprocessing_metadata
    from mmdas.deployment.onnx_infer import preprocess
    x = torch.from_numpy(preprocess(image, preprocessing_metadata(model.cfg))[0])
    head = 'rpn_head' if hasattr(model, 'rpn_head') else 'bbox_head'
    with torch.no_grad():
        single = getattr(model, head)(model.extract_feat(x))
        double = copy.deepcopy(model).double()
        exact = getattr(double, head)(double.extract_feat(x.double()))
    error = max(
        float((a - b).abs().max() / b.abs().max()) for outs in zip(single, exact)
        for a, b in zip(*outs))
    tol = Tolerance()
    return Tolerance(
        rtol=max(tol.rtol, 10 * error),
        score=max(tol.score, 10 * error),
        box=max(tol.box, 10 * error * max(image.shape)))


def check_against_mmdet(model,
                        path: str,
                        images,
                        deform_convs: int,
                        family: str,
                        smaller: bool = True) -> None:
    """The file at ``path`` has standard operators only, the family's nodes, and passes the
    export's check against mmdet (mmdas.deployment.parity) on ``images`` and (``smaller``) a
    smaller copy of the last (free H, W), with detections to compare on each."""
    assert nonstandard_operators(path) == []
    ops = [op for _, op in operator_types(path)]
    assert (ops.count('DeformConv'), ops.count('RoiAlign'),
            ops.count('NonMaxSuppression')) == (deform_convs, ) + NODES[family]
    session = probed_session(path)
    tol = rounding_tolerance(model, images[0])
    resized = [cv2.resize(images[-1], None, fx=0.75, fy=0.75)] if smaller else []
    for image in list(images) + resized:
        report = compare_with_mmdet(model, session, image, tol)
        assert report.ok and report.matched >= 5, report
        assert any(line.startswith('masks:') for line in report.lines) == (family == 'mask')


@pytest.mark.parametrize('config, deform_convs, family', CONFIGS)
def test_whole_detector_matches_mmdet(config, deform_convs, family, coco_shapes, tmp_path):
    cfg = small_cfg(config, coco_shapes)
    if family == 'cascade':  # three stages' softmax over 81 classes averaged: ~1/81 each
        cfg.model.test_cfg.rcnn.score_thr = 0.02
    images = shapes_images(coco_shapes)
    model = init_model(cfg, written_checkpoint(cfg, str(tmp_path / 'model.pth'), images))
    path = export_detector(model, str(tmp_path / 'det.onnx'), images[0])
    if config == DEMO:
        check_against_mmdet(model, path, images[:2], deform_convs, family)
    else:  # a full-width config: one image; the demo and the twins check free sizes
        check_against_mmdet(model, path, images[:1], deform_convs, family, smaller=False)


@pytest.mark.parametrize('family', list(TWINS))
def test_each_familys_demo_width_twin_matches_mmdet(family, coco_shapes, tmp_path):
    """The demo-width twin of each family (spread-out scores, so ~100 detections per image):
    boxes, scores, labels and, for Mask R-CNN, the pasted masks."""
    cfg = family_twin(TWINS[family], coco_shapes, tmp_path, iters=1)
    images = shapes_images(coco_shapes)
    model = init_model(cfg, written_checkpoint(cfg, str(tmp_path / 'model.pth'), images))
    path = export_detector(model, str(tmp_path / 'det.onnx'), images[0])
    check_against_mmdet(model, path, images[:2], 4, family)


def test_the_rtmdet_twin_matches_mmdet(coco_shapes, tmp_path):
    """RTMDet-tiny with DAS gates in its CSPNeXt, at the demo's data: the file's detections
    against mmdet's own (distances from points, no centerness, sigmoid class scores)."""
    cfg = realtime_twin('rtmdet_das-tiny_8xb32-300e_coco.py', coco_shapes, tmp_path, iters=1)
    images = shapes_images(coco_shapes)
    model = init_model(cfg, written_checkpoint(cfg, str(tmp_path / 'model.pth'), images))
    path = export_detector(model, str(tmp_path / 'det.onnx'), images[0])
    check_against_mmdet(model, path, images[:2], 4, 'rtmdet')


@pytest.mark.slow
def test_detections_are_in_the_input_images_pixels(coco_shapes, tmp_path):
    """Every box lies inside the image, and an image twice as large (which the preprocessing
    resizes back) gets mmdet's detections in its own pixels."""
    cfg = small_cfg(DEMO, coco_shapes)
    images = shapes_images(coco_shapes)
    model = init_model(cfg, written_checkpoint(cfg, str(tmp_path / 'model.pth'), images))
    image = images[0]
    path = export_detector(model, str(tmp_path / 'det.onnx'), image)
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    dets, _ = onnx_detections(session, image)
    h, w = image.shape[:2]
    assert len(dets) and (dets[:, :4] >= 0).all()
    assert (dets[:, [0, 2]] <= w).all() and (dets[:, [1, 3]] <= h).all()
    bigger = cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    report = compare_with_mmdet(model, probed_session(path), bigger)
    assert report.ok and report.matched > 0, report


def run_deployed(folder, onnx_file: str, image: str):
    """``onnx_infer.py`` on a deployment machine: the file and the runtime the export wrote
    beside it, alone in ``folder``,
    run there with torch, the OpenMMLab packages and mmdas unimportable and nothing on
    PYTHONPATH; it draws to ``folder/drawn`` everything it finds."""
    import shutil
    import subprocess
    import sys
    os.makedirs(folder)
    shutil.copy(osp.join(osp.dirname(onnx_file), 'onnx_infer.py'), folder)
    shutil.copy(onnx_file, osp.join(folder, 'det.onnx'))
    blocked = ("import sys, runpy; sys.modules.update(torch=None, mmcv=None, mmdet=None, "
               "mmengine=None, mmdas=None); sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    command = [
        sys.executable, '-c', blocked, 'onnx_infer.py', 'det.onnx', image, '--out', 'drawn',
        '--score-thr', '0.0'
    ]
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_the_tool_checks_against_mmdet_and_onnx_infer_runs_without_torch(coco_shapes, tmp_path):
    cfg = small_cfg(DEMO, coco_shapes)
    checkpoint = written_checkpoint(cfg, str(tmp_path / 'model.pth'), shapes_images(coco_shapes))
    out = str(tmp_path / 'det.onnx')
    options = [
        '--cfg-options', f'test_dataloader.dataset.data_root={coco_shapes}/',
        f'test_evaluator.ann_file={coco_shapes}/annotations/instances_test.json'
    ]
    proc = run_main('tools/deployment/pytorch2onnx.py',
                    [osp.join(ROOT, DEMO), '--checkpoint', checkpoint, '--out', out, '--coco'] +
                    options)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ops = [op for _, op in operator_types(out)]
    assert (ops.count('DeformConv'), ops.count('RoiAlign'), ops.count('NonMaxSuppression')) == \
        (4, 4, 2)
    aps = [
        float(line.split(': ')[1].split()[0]) for line in proc.stdout.splitlines()
        if 'COCO bbox AP over the test set' in line
    ]
    assert len(aps) == 2 and abs(aps[0] - aps[1]) <= 0.005
    # a deployment machine: the file and onnx_infer.py alone in a folder
    image = osp.join(coco_shapes, 'val', 'val_00000.jpg')
    proc = run_deployed(tmp_path / 'deploy', out, image)
    assert 'detection(s) with score >= 0.0' in proc.stdout
    drawn = cv2.imread(str(tmp_path / 'deploy' / 'drawn' / 'val_00000.jpg'))
    assert drawn.shape == cv2.imread(image).shape


def test_what_the_graph_does_not_cover_is_refused_by_name(coco_shapes):
    """Soft-NMS has no standard ONNX operator: refused by name, with what works instead
    (class-agnostic regression is covered: Cascade R-CNN's heads use it)."""
    from mmdas.deployment.detector import detector_graph
    cfg = small_cfg(DEMO, coco_shapes)
    cfg.model.test_cfg.rcnn.nms = dict(type='soft_nms', iou_threshold=0.5)
    with pytest.raises(ValueError, match=r"test_cfg.rcnn.nms.type='soft_nms'.*type='nms' only"):
        detector_graph(init_model(cfg))


@pytest.mark.parametrize('mmdet_config, family', [
    ('atss/atss_r50_fpn_1x_coco.py', 'ATSS'),
    ('tood/tood_r50_fpn_1x_coco.py', 'TOOD'),
    ('yolox/yolox_s_8xb8-300e_coco.py', 'YOLOX'),
])
def test_a_family_the_export_does_not_write_is_refused_before_tracing(mmdet_config, family, scope):
    """Cascade R-CNN's three box heads used to get into the graph and die on a missing
    ``bbox_coder``: a family the export does not write is named, with the supported ones."""
    from mmdet.registry import MODELS
    from mmengine.hub import get_config

    from mmdas.deployment.detector import detector_graph
    cfg = get_config(f'mmdet::{mmdet_config}')
    cfg.model.backbone.init_cfg = None
    with scope('mmdet'):
        detector = MODELS.build(cfg.model)
    with pytest.raises(
            ValueError,
            match=f'covers FasterRCNN, MaskRCNN, CascadeRCNN, RetinaNet, FCOS, RTMDet; {family} '
            'is not '
            'exported whole'):
        detector_graph(detector)


def dets(*rows):
    """``(boxes, scores, labels)`` of rows ``(x1, y1, x2, y2, score, label)``."""
    rows = np.array(rows, np.float64).reshape(-1, 6)
    return rows[:, :4], rows[:, 4], rows[:, 5].astype(np.int64)


def compared(reference, candidate, **settings):
    report = Report()
    settings = dict(dict(iou_thr=0.5, max_per_img=100, score_thr=0.05), **settings)
    compare_sets('detections', reference, candidate, Tolerance(), report, **settings)
    return report


A = [10., 10., 50., 50.]


def test_each_detection_is_matched_to_its_own_counterpart_first():
    """A reference detection without a counterpart must not take a neighbour's counterpart: the
    closest pairs match first, and the one left over is judged, not hidden."""
    flipped = [14., 14., 54., 54.]  # overlaps A's counterpart by IoU 0.67, scored higher
    report = compared(
        dets(flipped + [0.9, 0], A + [0.8, 0]), dets([v + 1e-5 for v in A] + [0.8, 0]))
    assert report.lines[0].startswith('detections: 1 of 2 (mmdet) / 1 (onnx) matched')
    assert len(report.failures) == 1 and report.failures[0].startswith('detections mmdet #0')
    # a pair further apart than the tolerance is two detections without a counterpart
    report = compared(dets(A + [0.8, 0]), dets([v + 0.5 for v in A] + [0.8, 0]))
    assert len(report.failures) == 2 and not report.ties


def test_a_near_tie_at_the_max_per_img_cut_is_allowed_and_named():
    """Two candidates scoring alike (1e-6 apart) compete for the last place: each runtime keeps
    another. Allowed, named; the same swap between candidates 0.01 apart is a failure."""
    kept = [dets([i, i, i + 30, i + 30, 0.9 - i / 100, 0]) for i in range(2)]
    last = [100, 100, 130, 130], [200, 200, 230, 230]
    for gap, ok in ((1e-6, True), (1e-2, False)):
        reference = [np.concatenate(v) for v in zip(*kept, dets(last[0] + [0.3, 1]))]
        candidate = [np.concatenate(v) for v in zip(*kept, dets(last[1] + [0.3 + gap, 1]))]
        report = compared(reference, candidate, max_per_img=3)
        assert report.ok == ok, report
        assert len(report.ties) == (2 if ok else 1)  # 0.3 + 1e-2 is no tie with 0.3
        assert all('max_per_img=3 cut' in tie for tie in report.ties)


def test_boxes_at_the_nms_threshold_are_allowed_and_what_they_suppress_follows():
    """B overlaps A by IoU 0.5 + 1e-7: one runtime suppresses it, the other keeps it, and B
    (IoU 0.8 with C) in turn suppresses C in that runtime only. Both allowed, named. At IoU 0.4
    the same difference is a failure (a wrong NMS, not a tie)."""

    def shifted(box, iou):  # the box moved right until it overlaps the original by ``iou``
        shift = 40 * (1 - iou) / (1 + iou)
        return [box[0] + shift, box[1], box[2] + shift, box[3]]

    def boxes_at(iou):
        return shifted(A, iou), shifted(shifted(A, iou), 0.8)

    b, c = boxes_at(0.5 + 1e-7)
    report = compared(dets(A + [0.9, 2], c + [0.7, 2]), dets(A + [0.9, 2], b + [0.8, 2]))
    assert report.ok, report
    assert any('at the NMS threshold 0.5' in tie and 'onnx #1' in tie for tie in report.ties)
    assert any('kept or suppressed by onnx #1' in tie for tie in report.ties)
    b, c = boxes_at(0.4)
    report = compared(dets(A + [0.9, 2]), dets(A + [0.9, 2], b + [0.8, 2]))
    assert not report.ok and 'no tie decides it' in report.failures[0]


def test_a_score_at_the_threshold_is_a_tie_and_one_above_it_is_not():
    report = compared(dets(A + [0.9, 0]), dets(A + [0.9, 0], [60, 60, 90, 90, 0.05 + 1e-6, 1]))
    assert report.ok and 'score threshold 0.05' in report.ties[0]
    report = compared(dets(A + [0.9, 0]), dets(A + [0.9, 0], [60, 60, 90, 90, 0.06, 1]))
    assert not report.ok


def test_a_box_clipped_flat_at_min_bbox_size_is_a_tie_and_a_real_box_is_not():
    """A dense head drops boxes not wider and higher than min_bbox_size; a box clipped flat at
    the border (height 1e-6) is kept by one runtime and dropped by the other (RTMDet)."""
    flat = [60, 84, 90, 84 + 1e-6, 0.3, 1]
    report = compared(dets(A + [0.9, 0]), dets(A + [0.9, 0], flat), min_size=0)
    assert report.ok and 'min_bbox_size=0' in report.ties[0]
    report = compared(dets(A + [0.9, 0]), dets(A + [0.9, 0], [60, 84, 90, 90, 0.3, 1]), min_size=0)
    assert not report.ok
    # both keep the flat box, with scores apart: a real difference, not a tie
    report = compared(dets(A + [0.9, 0], flat), dets(A + [0.9, 0], flat[:4] + [0.4, 1]), min_size=0)
    assert not report.ok


def test_mask_pixels_may_differ_only_at_the_binarisation_threshold():
    """A mask whose probabilities sit at 0.5 + 1e-7 in the file and 0.5 - 1e-7 in mmdet: every
    pixel flips at the threshold, allowed and named. Pixels that differ where both runtimes'
    probabilities are 0.6 are a failure; so are probabilities 0.6 against 0.4."""
    from mmdas.deployment.onnx_infer import paste_masks
    dets = np.array([[0, 0, 28, 28, 0.9]], np.float32)
    cases = ((0.5 + 1e-7, 0.5 - 1e-7, 'at the threshold'), (0.6, 0.6, 'pixels differ away'),
             (0.6, 0.4, 'probabilities differ'))
    for file_prob, mmdet_prob, outcome in cases:
        probs = np.full((1, 28, 28), file_prob, np.float32)
        got = dict(masks=probs, dets=dets, pasted=paste_masks(probs, dets, 28, 28, 0.5))
        reference = dict(
            masks=np.zeros((1, 28, 28), bool),  # mmdet's pasted mask: no pixel
            mask_probs=np.full((1, 28, 28), mmdet_prob, np.float32),
            boxes=dets[:, :4])
        report = Report()
        compare_masks(reference, got, [(0, 0)], Tolerance(), report, 0.5)
        flipped = int(got['pasted'].sum())
        assert flipped > 700, report
        if outcome == 'at the threshold':
            assert report.ok and report.ties == [
                f'mask of mmdet #0: {flipped} pixel(s) at the threshold 0.5'
            ]
        else:
            assert len(report.failures) == 1 and outcome in report.failures[0], report


@pytest.mark.slow
def test_export_without_the_data_set_checks_on_generated_images(tmp_path):
    """No test set on disk: --coco stops in one line naming the file and the flag; otherwise
    the file is checked on generated images, and a model that finds nothing there (here: a
    score threshold nothing passes) fails on '0 detections compared'."""
    missing = str(tmp_path / 'no_data')
    options = [
        '--cfg-options', f'test_dataloader.dataset.data_root={missing}/',
        f'test_evaluator.ann_file={missing}/annotations/instances_test.json'
    ]
    out = str(tmp_path / 'det.onnx')
    proc = run_main('tools/deployment/pytorch2onnx.py',
                    [osp.join(ROOT, DEMO), '--out', out, '--coco'] + options)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f'--coco: no annotation file at {missing}/annotations/instances_test.json (the '
        "config's test set); put the data set there or leave --coco out")
    proc = run_main('tools/deployment/pytorch2onnx.py', [osp.join(ROOT, DEMO), '--out', out] +
                    options + ['model.test_cfg.rcnn.score_thr=1.01'])
    assert "the config's test set is not on disk" in proc.stdout, proc.stderr[-3000:]
    assert 'checking on 3 generated shapes images' in proc.stdout
    assert proc.returncode == 1 and '0 detections compared' in proc.stderr


@pytest.mark.slow
def test_a_mask_rcnn_file_runs_without_torch_and_pastes_masks_as_mmdet(coco_shapes, tmp_path):
    """The deployment machine pastes a Mask R-CNN's masks itself (NumPy): the pixels the
    exporter's check compared with mmdet's own masks of the same image."""
    cfg = family_twin(TWINS['mask'], coco_shapes, tmp_path, iters=1)
    images = shapes_images(coco_shapes)
    model = init_model(cfg, written_checkpoint(cfg, str(tmp_path / 'model.pth'), images))
    path = export_detector(model, str(tmp_path / 'det.onnx'), images[0])
    image = osp.join(coco_shapes, 'val', 'val_00001.jpg')
    proc = run_deployed(tmp_path / 'deploy', path, image)
    printed = [
        int(line.split(' mask ')[1].split()[0]) for line in proc.stdout.splitlines()
        if line.endswith(' px')
    ]
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    masks = onnx_detections(session, cv2.imread(image))[2]
    assert len(printed) == len(masks) >= 5 and max(printed) > 0
    assert printed == [int(m.sum()) for m in masks]
    report = compare_with_mmdet(model, probed_session(path), cv2.imread(image))
    assert report.ok and report.matched >= 5, report


def test_masks_are_pasted_as_mmdet_pastes_them():
    """``onnx_infer.paste_mask`` (NumPy) against mmdet's ``_do_paste_mask`` as its CPU path
    runs it (one detection at a time, the box's window): the same window, the same probabilities
    to float32 rounding, and after ``>= mask_thr_binary`` the same pixels except where a
    probability lies within rounding of the threshold; fractional, integer, zero-width and
    border boxes, and boxes beyond the image."""
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

    from mmdas.deployment.onnx_infer import paste_mask, paste_masks
    h, w = 57, 83
    boxes = np.array(
        [[10.3, 5.7, 40.2, 30.9], [0, 0, 83, 57], [12, 14, 13, 40], [20, 20, 20, 31],
         [70.5, 50.5, 83, 57], [-5, -3, 30, 20], [60.1, 1.2, 95, 70], [5, 5, 5.4, 5.3]], np.float32)
    rng = np.random.default_rng(0)
    for size in (28, 14):
        probs = rng.random((len(boxes), size, size)).astype(np.float32)
        binary = paste_masks(probs, boxes, h, w, 0.5)
        for i, (prob, box) in enumerate(zip(probs, boxes)):
            pasted, window = _do_paste_mask(
                torch.from_numpy(prob[None, None]), torch.from_numpy(box[None]), h, w)
            ours_window, ours = paste_mask(prob, box, h, w)
            assert ours_window == window, (size, box)
            np.testing.assert_allclose(ours, pasted[0].numpy(), atol=1e-6)
            reference = np.zeros((h, w), bool)
            reference[window] = (pasted[0] >= 0.5).numpy()
            differ = binary[i] != reference
            near = np.zeros((h, w), bool)
            near[window] = np.abs(pasted[0].numpy() - 0.5) <= 1e-6
            assert not (differ & ~near).any(), (size, box)
        assert binary.any(axis=(1, 2))[:3].all()  # not a check of empty masks


def test_coco_ap_of_the_truth_is_one_through_the_tools_path(coco_shapes):
    """The tool's COCO scoring (its COCO-format results, RLE masks and pycocotools): detections
    made from the test split's own annotations score bbox and segm AP 1.0; masks moved by
    3 px score less."""
    from pycocotools.coco import COCO
    tool = load_tool('tools/deployment/pytorch2onnx.py')
    truth = COCO(osp.join(coco_shapes, 'annotations', 'instances_test.json'))
    category_ids = sorted(truth.cats)

    def results(shift: int):
        found = []
        for image_id in truth.getImgIds():
            anns = truth.imgToAnns[image_id]
            dets = np.array([[x, y, x + w, y + h, 1.0] for x, y, w, h in (a['bbox'] for a in anns)])
            labels = np.array([category_ids.index(a['category_id']) for a in anns])
            masks = np.stack([np.roll(truth.annToMask(a), shift, axis=1) for a in anns]) > 0
            found += tool.coco_results((dets, labels, masks), image_id, category_ids)
        return found

    assert len(results(0)) > 8
    assert tool.coco_evaluate(truth, results(0), 'bbox')[0] == 1.0
    assert tool.coco_evaluate(truth, results(0), 'segm')[0] == 1.0
    assert tool.coco_evaluate(truth, results(3), 'segm')[0] < 0.9


def changed_copy(path: str, out: str, node: str = '', metadata=None, iou=None) -> str:
    """A copy of the ONNX file at ``path`` with one thing changed: noise (sd 0.1) on the weight
    of the first Conv or Gemm node whose name starts with ``node``, a metadata entry, or the IoU
    threshold of the last NMS."""
    import onnx
    from onnx import numpy_helper
    proto = onnx.load(path)
    tensors = {t.name: t for t in proto.graph.initializer}
    if node:
        weight = tensors[next(
            n for n in proto.graph.node
            if n.name.startswith(node) and n.op_type in ('Conv', 'Gemm')).input[1]]
        values = numpy_helper.to_array(weight)
        noise = np.random.default_rng(0).normal(0, 0.1, values.shape).astype(values.dtype)
        weight.CopyFrom(numpy_helper.from_array(values + noise, weight.name))
    if iou is not None:
        name = [n for n in proto.graph.node if n.op_type == 'NonMaxSuppression'][-1].input[3]
        value = numpy_helper.from_array(np.array([iou], np.float32), name)
        if name in tensors:
            tensors[name].CopyFrom(value)
        else:
            next(n for n in proto.graph.node if name in n.output).attribute[0].t.CopyFrom(value)
    if metadata:
        props = {p.key: p.value for p in proto.metadata_props}
        del proto.metadata_props[:]
        onnx.helper.set_model_props(proto, dict(props, **metadata))
    onnx.save(proto, out)
    return out


@pytest.fixture(scope='module')
def demo_file(coco_shapes, tmp_path_factory):
    """The demo detector with a written checkpoint, exported; its model and an image."""
    folder = tmp_path_factory.mktemp('demo_file')
    cfg = small_cfg(DEMO, coco_shapes)
    images = shapes_images(coco_shapes)
    model = init_model(cfg, written_checkpoint(cfg, str(folder / 'model.pth'), images))
    return model, export_detector(model, str(folder / 'det.onnx'), images[0]), images[1]


@pytest.mark.parametrize(
    'change, where', [
        (dict(node='/backbone/'), 'rpn_cls.0'),
        (dict(node='/bbox_head/fc_cls/'), 'roi_cls'),
        (dict(metadata=dict(mean='[113.675, 116.28, 103.53]')), 'rpn_cls.0'),
        (dict(iou=0.3), 'no tie decides it'),
    ],
    ids=['backbone weight', 'box head weight', 'preprocessing', 'NMS'])
def test_the_check_fails_a_file_that_computes_something_else(demo_file, tmp_path, change, where):
    """The check passes the exported file and fails a copy with one real difference: a weight
    of the backbone or of the box head changed, the preprocessing's mean changed, the final
    NMS at IoU 0.3 instead of 0.5. Each failure names where it was seen."""
    model, path, image = demo_file
    assert compare_with_mmdet(model, probed_session(path), image).ok
    wrong = changed_copy(path, str(tmp_path / 'wrong.onnx'), **change)
    report = compare_with_mmdet(model, probed_session(wrong), image)
    assert not report.ok and any(where in failure for failure in report.failures), report


@pytest.mark.parametrize('family', ['retinanet', 'fcos'])
def test_the_check_fails_a_dense_detector_that_computes_something_else(
        family, coco_shapes, tmp_path):
    """The one-stage families: the exported file passes; a copy with a changed head weight
    fails on the head's outputs, one with its NMS at IoU 0.3 on the detections (RetinaNet;
    FCOS's boxes here overlap too little for that NMS to change them)."""
    cfg = family_twin(TWINS[family], coco_shapes, tmp_path, iters=1)
    images = shapes_images(coco_shapes)
    model = init_model(cfg, written_checkpoint(cfg, str(tmp_path / 'model.pth'), images))
    path = export_detector(model, str(tmp_path / 'det.onnx'), images[0])
    assert compare_with_mmdet(model, probed_session(path), images[1]).ok
    changes = [(dict(node='/bbox_head/'), 'cls.0')]
    changes += [(dict(iou=0.3), 'no tie')] if family == 'retinanet' else []
    for change, where in changes:
        wrong = changed_copy(path, str(tmp_path / 'wrong.onnx'), **change)
        report = compare_with_mmdet(model, probed_session(wrong), images[1])
        assert not report.ok and any(where in failure for failure in report.failures), report


def test_the_check_fails_masks_binarised_at_another_threshold(coco_shapes, tmp_path):
    """A Mask R-CNN file whose metadata binarises at 0.6 instead of mmdet's 0.5: the
    probabilities agree, the pasted pixels differ away from the threshold."""
    cfg = family_twin(TWINS['mask'], coco_shapes, tmp_path, iters=1)
    images = shapes_images(coco_shapes)
    model = init_model(cfg, written_checkpoint(cfg, str(tmp_path / 'model.pth'), images))
    path = export_detector(model, str(tmp_path / 'det.onnx'), images[0])
    wrong = changed_copy(path, str(tmp_path / 'wrong.onnx'), metadata=dict(mask_thr_binary='0.6'))
    report = compare_with_mmdet(model, probed_session(wrong), images[1])
    assert not report.ok and all('away from the threshold' in f for f in report.failures), report


@pytest.mark.slow
def test_an_untrained_retinanet_whose_scores_all_tie_passes(coco_shapes, tmp_path):
    """An untrained RetinaNet scores every (anchor, class) pair 0.01 (its prior) to within
    rounding, so which pairs pass the per-level top-k and the max_per_img cut is a tie each
    runtime breaks its own way: the file passes, each such difference named as a tie."""
    cfg = family_twin(TWINS['retinanet'], coco_shapes, tmp_path, iters=1)
    cfg.model.test_cfg.score_thr = 0.005
    images = shapes_images(coco_shapes)
    torch.manual_seed(0)
    model = init_model(cfg)
    path = export_detector(model, str(tmp_path / 'det.onnx'), images[0])
    session = probed_session(path)
    for image in images[:2]:
        reference = mmdet_detections(model, image)
        assert len(reference[0]) == 100 and np.ptp(reference[0][:, 4]) < 1e-5
        report = compare_with_mmdet(model, session, image)
        assert report.ok, report
        assert all('cut' in tie or 'NMS threshold' in tie or 'itself a tie' in tie
                   for tie in report.ties)


def test_preprocessing_is_mmdets_own_with_rtmdets_fixed_pad(scope):
    """RTMDet's test pipeline resizes, then pads to a fixed size with 114 (bottom and right),
    after which mmdet sees the padded shape: the file's NumPy preprocessing gives mmdet's input
    tensor and image shape for a non-square image."""
    from mmcv.transforms import Compose
    from mmdet.registry import MODELS

    from mmdas.deployment.detector import preprocessing_metadata
    from mmdas.deployment.onnx_infer import preprocess
    cfg = Config.fromfile(osp.join(ROOT, 'configs/das/rtmdet_das-tiny_8xb32-300e_coco.py'))
    steps = [dict(type='LoadImageFromNDArray')] + [
        step for step in cfg.test_dataloader.dataset.pipeline
        if step['type'] not in ('LoadImageFromFile', 'LoadAnnotations')
    ]
    assert [step['type']
            for step in steps] == ['LoadImageFromNDArray', 'Resize', 'Pad', 'PackDetInputs']
    image = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    with scope('mmdet'):
        data = Compose(steps)(dict(img=image, img_id=0))
        batch = MODELS.build(cfg.model.data_preprocessor)(dict(
            inputs=[data['inputs']], data_samples=[data['data_samples']]), False)
    expected, sample = batch['inputs'].numpy(), batch['data_samples'][0]
    ours, info = preprocess(image, preprocessing_metadata(cfg))
    assert ours.shape == expected.shape == (1, 3, 640, 640)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)
    assert tuple(info[:2]) == sample.img_shape == (640, 640)
    np.testing.assert_allclose(info[2:], sample.scale_factor, rtol=1e-6)
