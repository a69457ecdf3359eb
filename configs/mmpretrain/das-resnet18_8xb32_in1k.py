# ImageNet-1k classification with DAS-ResNet-18 (four DAS gates, alpha 0.2), the paper's recipe
# (Salajegheh et al., 2023): batch 256 (8 GPUs x 32), SGD lr 0.1, momentum 0.9, weight decay
# 1e-4, 100 epochs, lr x0.1 at epochs 30/60/90 (mmpretrain's imagenet_bs256 schedule).
# Plain baseline, same recipe: resnet18_8xb32_in1k.py.
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='DASResNet',
        gate=dict(type='DASGate', alpha=0.2),
        gate_stages=(True, True, True, True)))
train_pipeline = [
    dict(type='LoadImageOrSkip'),  # a corrupt image is logged and skipped, see README
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
auto_scale_lr = dict(base_batch_size=256)
custom_hooks = [dict(type='ClassNumCheckHook')]
