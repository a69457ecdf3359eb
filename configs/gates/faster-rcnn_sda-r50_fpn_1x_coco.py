# Faster R-CNN FPN 1x COCO with SDA-ResNet-50: SDA-xNet's stage-wise depth attention (Guo et al.)
# fusing the blocks of each ResNet-50 stage (mmdas's SDAResNet: the ResNet layout, not the
# official 86-layer "SDA-ResNet-50"; see mmdas/models/backbones/sda_resnet.py). Everything else
# (recipe, schedule, ImageNet init: the new attention starts fresh) is the DAS-R50 config's.
_base_ = '../das/faster-rcnn_das-r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SDAResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')))
