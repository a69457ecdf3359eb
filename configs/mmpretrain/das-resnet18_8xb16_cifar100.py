# CIFAR-100 with DAS-ResNet-18 (CIFAR stem: 3x3 conv, no max-pool), the paper's recipe:
# batch 128 (8 GPUs x 16), SGD lr 0.1, momentum 0.9, weight decay 5e-4, 300 epochs,
# lr x0.2 at epochs 70/130/200/260. Plain baseline: resnet18_8xb16_cifar100.py.
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    'mmpretrain::_base_/datasets/cifar100_bs16.py',
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='DASResNet_CIFAR',
        gate=dict(type='DASGate', alpha=0.2),
        gate_stages=(True, True, True, True)),
    head=dict(num_classes=100))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[70, 130, 200, 260], gamma=0.2)
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
auto_scale_lr = dict(base_batch_size=128)
custom_hooks = [dict(type='ClassNumCheckHook')]
