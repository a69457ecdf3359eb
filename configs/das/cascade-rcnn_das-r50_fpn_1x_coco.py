# Cascade R-CNN FPN 1x COCO with a DAS-ResNet-50 backbone (four DAS gates, alpha 0.2): mmdet's
# `cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py` with only the backbone changed (its
# pretrained ResNet-50 loads with the gates reported new). Stage 2 of the two-stage schedule
# (stage 1: cascade-rcnn_das-r50_fpn_backbone-warmup-1e_coco.py; docs/training.md).
_base_ = 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='DASResNet',
        gate=dict(type='DASGate', alpha=0.2),
        gate_stages=(True, True, True, True)))
