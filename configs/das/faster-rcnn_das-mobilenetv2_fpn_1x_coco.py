# Faster R-CNN FPN 1x COCO with a DAS-MobileNetV2 backbone: gates after layer2/3/5/7
# (strides 4, 8, 16, 32); FPN on the stride 4/8/16/32 outputs (24, 32, 96, 1280 channels).
_base_ = './faster-rcnn_das-r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='DASMobileNetV2',
        widen_factor=1.0,
        out_indices=(1, 2, 4, 7),
        gate_indices=(1, 2, 4, 6),
        gate=dict(type='DASGate', alpha=0.2),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://mmdet/mobilenet_v2')),
    neck=dict(in_channels=[24, 32, 96, 1280]))
