# Faster R-CNN FPN 1x COCO with a DAS-ResNet-50 backbone (four DAS gates, alpha 0.2).
# The paper's recipe (Salajegheh et al., 2023): SGD, lr 0.02 for batch 16 (8 GPUs x 2 images;
# pass --auto-scale-lr to mmdet's train.py to scale it to your batch), momentum 0.9,
# weight decay 1e-4, ImageNet-pretrained backbone. Stage 2 of the two-stage schedule
# (see README, "Two-stage schedule").
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='DASResNet',
        depth=50,
        gate=dict(type='DASGate', alpha=0.2),
        gate_stages=(True, True, True, True),
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')))

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))
auto_scale_lr = dict(enable=False, base_batch_size=16)
