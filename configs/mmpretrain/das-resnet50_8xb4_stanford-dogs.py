# Stanford Dogs (120 breeds) with DAS-ResNet-50, the paper's recipe: batch 32 (8 GPUs x 4),
# SGD lr 0.1, momentum 0.9, weight decay 1e-4, cosine schedule, random crop and flip; 100
# epochs (our choice; the paper does not state it), from the ImageNet ResNet-50 weights.
# Data: an ImageNet-style folder set (CustomDataset),
#   data/stanford_dogs/train/<breed>/*.jpg   data/stanford_dogs/test/<breed>/*.jpg
# Plain baseline: resnet50_8xb4_stanford-dogs.py.
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='DASResNet',
        depth=50,
        gate=dict(type='DASGate', alpha=0.2),
        gate_stages=(True, True, True, True),
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=120,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))

data_root = 'data/stanford_dogs/'
data_preprocessor = dict(
    num_classes=120, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
train_pipeline = [
    dict(type='LoadImageOrSkip'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='CustomDataset', data_root=data_root, data_prefix='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CustomDataset', data_root=data_root, data_prefix='test', pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(type='CosineAnnealingLR', T_max=100, by_epoch=True, begin=0, end=100)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)
custom_hooks = [dict(type='ClassNumCheckHook')]
