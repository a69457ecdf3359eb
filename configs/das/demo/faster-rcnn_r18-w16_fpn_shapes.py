# Demo detector that trains on 2 CPU cores in minutes: Faster R-CNN FPN with a plain
# ResNet-18 at a quarter of its width (base_channels=16), trained from scratch on the synthetic
# shapes set (`python tools/misc/make_shapes_coco.py data/shapes`). The DAS twin is
# faster-rcnn_das-r18-w16_fpn_shapes.py; `make demo` trains both with the two-stage schedule.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

data_root = 'data/shapes/'
metainfo = dict(classes=('square', 'disc', 'triangle', 'cross'))
img_scale = (160, 160)
max_iters = 300

model = dict(
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=16,
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=64),
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(scales=[4], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64])),
    # RoIAlign through torchvision's kernel (mmcv's RoIAlign, use_torchvision=True): the same
    # arithmetic as mmcv's CPU kernel (tests/test_engine/test_detection.py compares both,
    # forward and gradient), and faster on CPU (measured: docs/results.md).
    roi_head=dict(
        bbox_roi_extractor=dict(
            out_channels=64,
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=2, use_torchvision=True)),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=4)),
    # At most 5 objects per 160 px image: far fewer proposals and sampled RoIs than COCO needs;
    # mmcv's CPU RoIAlign and NMS are otherwise most of a step's time.
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
# the test split: the val loader reading test/ and its annotations
test_dataloader = dict(
    val_dataloader,
    dataset=dict(
        val_dataloader['dataset'],
        ann_file='annotations/instances_test.json',
        data_prefix=dict(img='test/')))
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = dict(ann_file=data_root + 'annotations/instances_test.json')

train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[int(max_iters * 0.8)],
        gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=35, norm_type=2))
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(by_epoch=False, interval=max_iters, save_last=True, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
# One fixed seed, so that a rerun starts from the same weights and data order.
randomness = dict(seed=0)
