# Faster R-CNN FPN 1x COCO with a DAS-ResNet-101 backbone; recipe as the DAS-R50 config.
_base_ = './faster-rcnn_das-r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
