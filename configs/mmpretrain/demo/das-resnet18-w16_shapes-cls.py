# Classification demo that trains on 2 CPU cores in minutes: a DAS-ResNet-18 at a quarter of its
# width (base_channels=16) from scratch on synthetic 64 px shape images in mmpretrain's folder
# layout (data/shapes_cls/{train,val,test}/<class>/*.png, written by make demo-cls).
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

data_root = 'data/shapes_cls/'
# mmpretrain's CustomDataset numbers the class folders in sorted order; `classes` only names them
# (it checks their count), so they are listed in that order.
classes = ('cross', 'disc', 'square', 'triangle')
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='DASResNet',
        depth=18,
        stem_channels=16,
        base_channels=16,
        gate=dict(type='DASGate', alpha=0.2),
        out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=4,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))
data_preprocessor = dict(
    num_classes=4, mean=[127.5, 127.5, 127.5], std=[64.0, 64.0, 64.0], to_rgb=True)
train_pipeline = [
    dict(type='LoadImageOrSkip'),
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.6, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        classes=classes,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='val',
        classes=classes,
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
# the test split: the val loader reading test/
test_dataloader = dict(val_dataloader, dataset=dict(val_dataloader['dataset'], data_prefix='test'))
test_evaluator = val_evaluator

# AdamW: with SGD (lr 0.05, momentum 0.9) these from-scratch quarter-width networks sat at chance
# for a seed-dependent number of epochs, so 15 epochs measured luck; with AdamW both train at
# every seed tried. lr 2e-3: the best val top-1 of das_bench.CLS_LR_GRID (5e-4, 1e-3, 2e-3,
# 4e-3, 8e-3), seed 0, chosen on val by `make tune-cls` (the first of equals is kept); figures:
# docs/results.md. The plain twin chose its own rate the same way.
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05))
param_scheduler = dict(type='CosineAnnealingLR', T_max=15, by_epoch=True, begin=0, end=15)
train_cfg = dict(by_epoch=True, max_epochs=15, val_interval=15)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=15, max_keep_ckpts=1))
custom_hooks = [dict(type='ClassNumCheckHook')]
# One fixed seed, so that a rerun starts from the same weights and data order.
randomness = dict(seed=0)
