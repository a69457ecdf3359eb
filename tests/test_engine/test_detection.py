"""Faster R-CNN with DAS backbones: configs, the two-stage schedule, COCO AP, DDP on CPU (the
stage records: test_stage_record.py)."""
import os
import os.path as osp
import pickle

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import find_latest_checkpoint

import mmdas  # noqa: F401
from mmdas.engine import backbone_warmup_cfg, build_runner, run_stage, run_two_stage
from mmdas.engine.two_stage import StaleStageError
from mmdas.models.backbones import named_gates
from utils import DEMO_DET as DEMO
from utils import ROOT, family_twin, free_port, realtime_twin, run_tool
from utils import tiny_det_cfg as tiny_cfg
from utils import unscoped


@pytest.fixture
def shapes(coco_shapes):
    return coco_shapes


@pytest.mark.parametrize('config, backbone, neck_in', [
    ('faster-rcnn_das-r50_fpn_1x_coco.py', 'DASResNet', [256, 512, 1024, 2048]),
    ('faster-rcnn_das-r101_fpn_1x_coco.py', 'DASResNet', [256, 512, 1024, 2048]),
    ('faster-rcnn_das-mobilenetv2_fpn_1x_coco.py', 'DASMobileNetV2', [24, 32, 96, 1280]),
    ('faster-rcnn_das-x101-32x4d_fpn_1x_coco.py', 'DASResNeXt', [256, 512, 1024, 2048]),
])
def test_coco_configs_build_and_follow_the_paper_recipe(config, backbone, neck_in, scope):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs/das', config))
    assert cfg.model.backbone.type == backbone and cfg.model.neck.in_channels == neck_in
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4)
    assert cfg.auto_scale_lr.base_batch_size == 16 and cfg.train_cfg.max_epochs == 12
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    cfg.model.backbone.init_cfg = None  # no download here
    with scope('mmdet'):
        model = MODELS.build(cfg.model)
    feats = model.extract_feat(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [256] * 5


def test_coco_warmup_config_is_what_the_helper_derives():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/das/faster-rcnn_das-r50_fpn_1x_coco.py'))
    derived = backbone_warmup_cfg(cfg)
    assert cfg.model.type == 'FasterRCNN'  # the helper leaves its input alone
    warm = Config.fromfile(
        osp.join(ROOT, 'configs/das/faster-rcnn_das-r50_fpn_backbone-warmup-1e_coco.py'))
    assert warm.model.to_dict() == derived.model.to_dict()
    assert warm.model.type == 'BackboneWarmup' and warm.model.detector == 'FasterRCNN'
    assert warm.optim_wrapper == cfg.optim_wrapper  # no lr_mult: frozen by requires_grad
    assert warm.train_cfg.max_epochs == 1
    with pytest.raises(ValueError, match='backbone warm-up config already'):
        backbone_warmup_cfg(derived)


def test_warmup_freezes_everything_but_the_backbone_before_training(shapes, scope):
    """Frozen parts take no gradient: gradient clipping (mmengine clips the parameters that
    have one) sees the backbone alone, and DDP registers the backbone's parameters only."""
    from mmdet.registry import MODELS
    cfg = backbone_warmup_cfg(tiny_cfg(shapes, 'unused'))
    with scope('mmdet'):
        model = MODELS.build(cfg.model)
    from mmdet.models import FasterRCNN
    assert isinstance(model, FasterRCNN) and type(model).__mro__[2] is FasterRCNN
    keys = Config.fromfile(DEMO).model
    with scope('mmdet'):
        assert list(model.state_dict()) == list(MODELS.build(keys).state_dict())
    trainable = {n.split('.')[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'backbone'}
    # a class made at run time: pickled (torch.save(model): protocol 2) as the same class
    copied = pickle.loads(pickle.dumps(model, protocol=2))
    assert type(copied) is type(model) and list(copied.state_dict()) == list(model.state_dict())
    assert {n.split('.')[0] for n, p in copied.named_parameters() if p.requires_grad} == trainable
    from mmengine.structures import InstanceData

    from mmdas.apis import unscaled_det_sample
    sample = unscaled_det_sample(96, 96)
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[10., 10., 50., 60.]]), labels=torch.tensor([1]))
    model.train()
    losses = model.loss(torch.randn(1, 3, 96, 96), [sample])
    sum(v if torch.is_tensor(v) else sum(v) for k, v in losses.items() if 'loss' in k).backward()
    with_grad = {n.split('.')[0] for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {'backbone'}
    with pytest.raises(
            ValueError,
            match=r'trainable must name parts of FasterRCNN \(data_preprocessor, backbone'):
        with scope('mmdet'):
            MODELS.build(dict(cfg.model, trainable=('backbones', )))


@pytest.mark.slow
def test_warmup_changes_only_the_backbone_then_finetune_changes_all(shapes, tmp_path):
    cfg = tiny_cfg(shapes, tmp_path)
    torch.manual_seed(0)
    start = run_stage(cfg, str(tmp_path / 'start'))  # a "trained vanilla" starting point
    before = torch.load(start)['state_dict']
    final = run_two_stage([backbone_warmup_cfg(cfg), cfg],
                          str(tmp_path / 'two'),
                          stage1_load_from=start)
    warm = torch.load(find_latest_checkpoint(str(tmp_path / 'two/stage1_backbone_warmup')))
    warm = warm['state_dict']
    for key, value in before.items():
        if key.startswith('backbone.'):
            continue
        assert torch.equal(value, warm[key]), f'{key} changed during the backbone warm-up'
    changed = [
        k for k, v in before.items()
        if k.startswith('backbone.') and v.dtype.is_floating_point and not torch.equal(v, warm[k])
    ]
    assert any('.das_gate.' not in k for k in changed) and len(changed) > 10
    after = torch.load(final)['state_dict']
    assert not torch.equal(after['roi_head.bbox_head.fc_cls.weight'],
                           warm['roi_head.bbox_head.fc_cls.weight'])
    # The same schedule finished is reused: same checkpoint, no new training.
    mtime = os.path.getmtime(final)
    assert run_two_stage([backbone_warmup_cfg(cfg), cfg],
                         str(tmp_path / 'two'),
                         stage1_load_from=start) == final
    assert os.path.getmtime(final) == mtime
    # A longer fine-tune is another stage: never answered with the old checkpoint.
    longer = tiny_cfg(shapes, tmp_path, iters=3)
    with pytest.raises(StaleStageError, match=r'train_cfg.max_iters: 2 then, 3 now'):
        run_two_stage([backbone_warmup_cfg(cfg), longer],
                      str(tmp_path / 'two'),
                      stage1_load_from=start)
    # Another starting checkpoint makes the warm-up another stage too.
    with pytest.raises(StaleStageError, match='load_from'):
        run_two_stage([backbone_warmup_cfg(cfg), cfg],
                      str(tmp_path / 'two'),
                      stage1_load_from=final)


def test_warmup_without_trained_heads_raises_before_building_anything(tmp_path):
    cfg = Config.fromfile(DEMO)
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'never_read')
    with pytest.raises(ValueError, match='--stage1-load-from'):
        run_two_stage([backbone_warmup_cfg(cfg), cfg], str(tmp_path / 'two'))
    assert not (tmp_path / 'two').exists()


@pytest.mark.parametrize('aligned', [True, False])
def test_demo_roi_align_through_torchvision_is_mmcvs_kernel(aligned):
    """The demo detector pools RoIs with torchvision's kernel (mmcv's RoIAlign with
    use_torchvision=True): the same output and input gradient as mmcv's own CPU kernel, for
    boxes inside, across and outside the map's border, and degenerate ones."""
    from mmcv.ops import RoIAlign
    torch.manual_seed(0)
    x = torch.randn(3, 8, 20, 24, dtype=torch.float64, requires_grad=True)
    corners = torch.rand(200, 2) * 100 - 10
    boxes = torch.cat([corners, corners + torch.rand(200, 2) * 60], 1)
    boxes[:10, 2:] = boxes[:10, :2]  # zero-size boxes
    boxes[10:20] = torch.tensor([0., 0., 96., 80.])  # the whole map, integer corners
    rois = torch.cat([torch.randint(0, 3, (200, 1)).double(), boxes.double()], 1)
    outputs, grads = [], []
    for use_torchvision in (False, True):
        layer = RoIAlign(7, 0.25, 2, aligned=aligned, use_torchvision=use_torchvision)
        y = layer(x, rois.clone())
        (gx, ) = torch.autograd.grad((y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum(), x)
        outputs.append(y)
        grads.append(gx)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=1e-12)
    cfg = Config.fromfile(DEMO)
    assert cfg.model.roi_head.bbox_roi_extractor.roi_layer.use_torchvision


def detections_from_truth(ann_file: str, classes, shift: float = 0.0):
    """mmdet data samples whose predictions are a split's own ground-truth boxes (score 1),
    each moved right by ``shift`` pixels."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    from pycocotools.coco import COCO
    truth = COCO(ann_file)
    label = {cat: classes.index(truth.cats[cat]['name']) for cat in truth.cats}
    samples = []
    for img_id, img in truth.imgs.items():
        anns = truth.imgToAnns[img_id]
        boxes = torch.tensor([[x + shift, y, x + w + shift, y + h]
                              for x, y, w, h in (a['bbox'] for a in anns)]).reshape(-1, 4)
        sample = DetDataSample(
            metainfo=dict(img_id=img_id, ori_shape=(img['height'], img['width'])))
        sample.pred_instances = InstanceData(
            bboxes=boxes,
            scores=torch.ones(len(anns)),
            labels=torch.tensor([label[a['category_id']] for a in anns], dtype=torch.long))
        samples.append(sample.to_dict())
    return samples


def coco_bbox_map(cfg: Config, samples) -> float:
    from mmdet.evaluation import CocoMetric
    metric = CocoMetric(ann_file=cfg.test_evaluator.ann_file, metric='bbox')
    metric.dataset_meta = dict(classes=cfg.metainfo['classes'])
    metric.process({}, samples)
    return metric.evaluate(len(samples))['coco/bbox_mAP']


def test_coco_bbox_ap_of_the_truth_is_one(shapes, tmp_path):
    """mmdet's CocoMetric on a split's own annotations: the ground truth as detections scores
    bbox mAP 1.0, the same boxes moved by a few pixels less (the size-range APs are not
    compared: ``area`` is the visible-pixel count)."""
    cfg = tiny_cfg(shapes, tmp_path)
    assert cfg.test_evaluator.ann_file.endswith('instances_test.json')
    classes = list(cfg.metainfo['classes'])
    truth = detections_from_truth(cfg.test_evaluator.ann_file, classes)
    assert sum(len(s['pred_instances']['labels']) for s in truth) > 8
    assert coco_bbox_map(cfg, truth) == 1.0
    moved = detections_from_truth(cfg.test_evaluator.ann_file, classes, shift=3.0)
    assert 0.0 < coco_bbox_map(cfg, moved) < 0.9


@pytest.mark.slow
def test_coco_bbox_ap_is_evaluated_with_pycocotools(shapes, tmp_path):
    """The test loop scores the test split against the test split's annotations: the same
    detections scored by pycocotools directly give the same AP."""
    cfg = tiny_cfg(shapes, tmp_path, iters=4)
    ckpt = run_stage(cfg, str(tmp_path / 'train'))
    test_cfg = tiny_cfg(shapes, tmp_path / 'test')
    test_cfg.load_from = ckpt
    test_cfg.test_evaluator.outfile_prefix = str(tmp_path / 'dets')  # the detections, as json
    metrics = build_runner(test_cfg).test()
    assert {'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_s'} <= set(metrics)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    truth = COCO(osp.join(shapes, 'annotations', 'instances_test.json'))
    found = truth.loadRes(str(tmp_path / 'dets.bbox.json'))
    assert {d['image_id'] for d in found.dataset['annotations']} <= set(truth.imgs)
    evaluation = COCOeval(truth, found, 'bbox')
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert metrics['coco/bbox_mAP'] == round(evaluation.stats[0], 3)  # mmdet rounds to 3
    assert metrics['coco/bbox_mAP_50'] == round(evaluation.stats[1], 3)


@pytest.mark.slow
def test_missing_dataset_names_the_path(tmp_path):
    cfg = tiny_cfg(str(tmp_path / 'no_such_root'), tmp_path)
    with pytest.raises(FileNotFoundError, match='no_such_root'):
        build_runner(cfg).train()


@pytest.mark.slow
def test_our_train_tool_runs_two_process_ddp_with_gloo_on_cpu(shapes, tmp_path):
    opts = [
        '--cfg-options', f'train_dataloader.dataset.data_root={shapes}/',
        f'val_dataloader.dataset.data_root={shapes}/',
        f'val_evaluator.ann_file={shapes}/annotations/instances_val.json', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'train_dataloader.batch_size=2',
        'default_hooks.logger.interval=1'
    ]
    proc = run_tool('-m', [
        'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
        'tools/train.py', DEMO, '--launcher', 'pytorch', '--work-dir',
        str(tmp_path)
    ] + opts)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log and 'GPU number: 2' in log  # world size 2
    assert osp.isfile(tmp_path / 'iter_2.pth')


def test_unscaled_det_sample_describes_an_image_fed_as_it_is():
    from mmdas.apis import unscaled_det_sample
    meta = unscaled_det_sample(48, 80).metainfo
    for key in ('img_shape', 'pad_shape', 'ori_shape', 'batch_input_shape'):
        assert meta[key] == (48, 80), key
    assert meta['scale_factor'] == (1.0, 1.0)


FAMILIES = [
    ('mask-rcnn_das-r50_fpn_1x_coco.py', 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
     'mask-rcnn_das-r50_fpn_backbone-warmup-1e_coco.py'),
    ('retinanet_das-r50_fpn_1x_coco.py', 'retinanet/retinanet_r50_fpn_1x_coco.py',
     'retinanet_das-r50_fpn_backbone-warmup-1e_coco.py'),
    ('fcos_das-r50-caffe_fpn_gn-head_1x_coco.py', 'fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
     'fcos_das-r50-caffe_fpn_gn-head_backbone-warmup-1e_coco.py'),
    ('cascade-rcnn_das-r50_fpn_1x_coco.py', 'cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py',
     'cascade-rcnn_das-r50_fpn_backbone-warmup-1e_coco.py'),
    ('faster-rcnn_das-r50_fpn_1x_coco.py', 'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
     'faster-rcnn_das-r50_fpn_backbone-warmup-1e_coco.py'),
    ('rtmdet_das-tiny_8xb32-300e_coco.py', 'rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
     'rtmdet_das-tiny_backbone-warmup-1e_coco.py'),
    ('yolox_das-s_8xb8-300e_coco.py', 'yolox/yolox_s_8xb8-300e_coco.py',
     'yolox_das-s_backbone-warmup-1e_coco.py'),
]
#: What a DAS backbone config adds to its host's: the type and the gate's arguments.
GATE_KEYS = ('type', 'host', 'stages', 'gate', 'gate_stages')


@pytest.mark.slow
@pytest.mark.parametrize('config, mmdet_config, warmup', FAMILIES)
def test_detector_families_change_only_the_backbone_and_warm_up_by_one_rule(
        config, mmdet_config, warmup, scope):
    from mmdet.registry import MODELS
    from mmengine.hub import get_config

    from mmdas.apis import unscaled_det_sample
    cfg = Config.fromfile(osp.join(ROOT, 'configs/das', config))
    host = get_config(f'mmdet::{mmdet_config}')
    ours, theirs = unscoped(cfg.model.to_dict()), unscoped(host.model.to_dict())
    assert ours['backbone'].get('host', 'ResNet') == theirs['backbone']['type']
    assert ours['backbone']['type'] in ('DASResNet', 'GatedBackbone')
    assert {k: v for k, v in ours.items() if k != 'backbone'} == \
        {k: v for k, v in theirs.items() if k != 'backbone'}
    assert {k: v for k, v in ours['backbone'].items() if k not in GATE_KEYS} == \
        {k: v for k, v in theirs['backbone'].items() if k != 'type'}
    for key in ('optim_wrapper', 'train_cfg', 'param_scheduler', 'train_dataloader',
                'custom_hooks'):
        assert unscoped(cfg.to_dict().get(key)) == unscoped(host.to_dict().get(key)), key
    warm = Config.fromfile(osp.join(ROOT, 'configs/das', warmup))
    reference = Config.fromfile(
        osp.join(ROOT, 'configs/das/faster-rcnn_das-r50_fpn_backbone-warmup-1e_coco.py'))
    assert warm.model.to_dict() == backbone_warmup_cfg(cfg).model.to_dict()
    rule = backbone_warmup_cfg(cfg, max_epochs=1, val_interval=1)  # the host's loop, 1 epoch
    for key in ('train_cfg', 'param_scheduler', 'load_from', 'optim_wrapper'):
        expected = dict(
            train_cfg=rule.train_cfg, optim_wrapper=cfg.optim_wrapper).get(key, reference.get(key))
        assert warm.get(key) == expected, key
    cfg.model.backbone.init_cfg = None  # no download here
    with scope('mmdet'):
        model = MODELS.build(cfg.model)
        frozen = MODELS.build(dict(backbone_warmup_cfg(cfg).model, backbone=cfg.model.backbone))
    model.eval()
    with torch.no_grad():
        (result, ) = model.predict(torch.randn(1, 3, 128, 128), [unscaled_det_sample(128, 128)])
    assert result.pred_instances.bboxes.shape[1] == 4
    parts = {n.split('.')[0] for n, p in frozen.named_parameters() if p.requires_grad}
    assert parts == {'backbone'}
    heads = {n.split('.')[0] for n, _ in frozen.named_parameters()} - {'backbone'}
    assert heads >= {'neck'} and len(heads) >= 2  # a mask head, a dense head, three stages


USER_ATSS = """
# What a user writes to put DAS into a detector mmdas ships no config for (docs/training.md)
_base_ = 'mmdet::atss/atss_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)
model = dict(
    backbone=dict(type='DASResNet', depth=18, base_channels=16, init_cfg=None,
                  gate=dict(type='DASGate', alpha=0.2)),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=64),
    bbox_head=dict(num_classes=4, in_channels=64, feat_channels=64))
"""


def test_a_users_own_detector_trains_a_step_with_a_das_backbone(tmp_path, scope):
    """ATSS (no mmdas config): one training step through mmdet's own ``train_step`` on mmdet's
    own test inputs, every gate parameter updated; the warm-up rule freezes its head."""
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmengine.optim import OptimWrapper

    path = tmp_path / 'atss_das-r18-w16_fpn_1x_coco.py'
    path.write_text(USER_ATSS)
    cfg = Config.fromfile(str(path))
    with scope('mmdet'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        frozen = MODELS.build(backbone_warmup_cfg(cfg).model)
    assert type(model).__name__ == 'ATSS' and len(named_gates(model)) == 4
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    data = demo_mm_inputs(batch_size=2, image_shapes=(3, 128, 128), num_items=[3, 2], num_classes=4)
    losses = model.train_step(data, wrapper)
    assert {'loss_cls', 'loss_bbox', 'loss_centerness'} <= set(losses)
    assert all(torch.isfinite(v).all() for v in losses.values())
    # The biases of the depthwise and pointwise convs add a constant per channel that the
    # instance norm right after removes: their gradient is zero up to rounding.
    gate_params = [
        n for n, _ in model.named_parameters()
        if '.das_gate.' in n and not n.endswith(('depthwise.bias', 'pointwise.bias'))
    ]
    changed = [n for n in gate_params if not torch.equal(before[n], model.state_dict()[n])]
    assert len(gate_params) == 4 * 10 and set(changed) == set(gate_params)
    parts = {n.split('.')[0] for n, p in frozen.named_parameters() if p.requires_grad}
    assert parts == {'backbone'}


#: (twin, config, heads the fine-tune trains): each family's demo-width twin, and
#: RTMDet-tiny and YOLOX-S with their gated backbones and EMA hooks.
TWO_STAGE_CASES = [
    pytest.param(
        family_twin,
        'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', ('roi_head.mask_head.', 'roi_head.bbox_head.'),
        id='mask'),
    pytest.param(
        family_twin, 'retinanet/retinanet_r50_fpn_1x_coco.py', ('bbox_head.', ), id='retinanet'),
    pytest.param(
        family_twin, 'fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', ('bbox_head.', ), id='fcos'),
    pytest.param(
        family_twin,
        'cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py',
        ('roi_head.bbox_head.0.', 'roi_head.bbox_head.1.', 'roi_head.bbox_head.2.'),
        id='cascade'),
    pytest.param(
        realtime_twin, 'rtmdet_das-tiny_8xb32-300e_coco.py', ('bbox_head.', ), id='rtmdet'),
    pytest.param(realtime_twin, 'yolox_das-s_8xb8-300e_coco.py', ('bbox_head.', ), id='yolox'),
]


@pytest.mark.slow
@pytest.mark.parametrize('twin, config, heads', TWO_STAGE_CASES)
def test_each_family_runs_the_two_stage_schedule_and_coco_evaluation(twin, config, heads, shapes,
                                                                     tmp_path, scope):
    """The warm-up keeps every non-backbone part bit-identical, BatchNorm statistics included
    (a mask head, a one-stage detector's single head, Cascade's three heads, RTMDet's and
    YOLOX's necks with their BatchNorms) and trains the gates, the fine-tune trains the heads,
    and mmdet's test loop scores the result with pycocotools (bbox; segm for Mask R-CNN; the
    EMA hook's average for RTMDet and YOLOX)."""
    from mmdet.registry import MODELS
    fine = twin(config, shapes, tmp_path, iters=2)
    with scope('mmdet'):
        torch.manual_seed(0)
        model = MODELS.build(fine.model)
    start, (last_gate, _) = model.state_dict(), named_gates(model)[-1]
    torch.save(dict(state_dict=start), tmp_path / 'start.pth')
    final = run_two_stage([backbone_warmup_cfg(fine), fine],
                          str(tmp_path / 'two'),
                          stage1_load_from=str(tmp_path / 'start.pth'))
    warm = torch.load(find_latest_checkpoint(str(tmp_path / 'two/stage1_backbone_warmup')))
    after = torch.load(final)
    for key, value in start.items():
        if not key.startswith('backbone.'):
            assert torch.equal(value, warm['state_dict'][key]), f'{key} changed in the warm-up'
    key = f'{last_gate}.deform_conv.weight'
    assert not torch.equal(start[key], warm['state_dict'][key])
    for head in heads:
        assert any(not torch.equal(v, after['state_dict'][k]) for k, v in start.items()
                   if k.startswith(head) and v.dtype.is_floating_point), head
    assert ('ema_state_dict' in after) == bool(fine.get('custom_hooks'))
    test = twin(config, shapes, tmp_path / 'test', iters=2)
    test.load_from = final
    metrics = build_runner(test).test()
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0
    if 'mask_head.' in heads[0]:
        assert 0.0 <= metrics['coco/segm_mAP'] <= 1.0
