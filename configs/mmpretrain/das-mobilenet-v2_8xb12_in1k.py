# ImageNet-1k with DAS-MobileNetV2 (gates after layer2/3/5/7: strides 4, 8, 16, 32), the
# paper's recipe: batch 96 (8 GPUs x 12), SGD lr 0.045, momentum 0.9, weight decay 4e-5,
# lr x0.98 every epoch (mmpretrain's 300-epoch MobileNetV2 schedule otherwise).
# Plain baseline, same recipe: mobilenet-v2_8xb12_in1k.py.
_base_ = 'mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='DASMobileNetV2', gate_indices=(1, 2, 4, 6), gate=dict(type='DASGate', alpha=0.2)))
train_dataloader = dict(batch_size=12)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.045, momentum=0.9, weight_decay=4e-5))
param_scheduler = dict(type='StepLR', by_epoch=True, step_size=1, gamma=0.98)
auto_scale_lr = dict(base_batch_size=96)
custom_hooks = [dict(type='ClassNumCheckHook')]
