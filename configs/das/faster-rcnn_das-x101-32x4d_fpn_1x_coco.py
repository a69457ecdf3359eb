# Faster R-CNN FPN 1x COCO with a DAS-ResNeXt-101 (32x4d) backbone, one DAS gate per stage;
# recipe as the DAS-R50 config (mmdet's faster-rcnn_x101-32x4d_fpn_1x_coco.py backbone otherwise).
_base_ = './faster-rcnn_das-r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        type='DASResNeXt',
        depth=101,
        groups=32,
        base_width=4,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnext101_32x4d')))
