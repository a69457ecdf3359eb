# Faster R-CNN FPN 1x COCO with CBAM (Woo et al., ECCV 2018) at the DAS placement: one module
# after the last block of each ResNet-50 stage, where DAS puts its gates. Everything else (recipe,
# schedule, ImageNet init) is the DAS-R50 config's.
_base_ = '../das/faster-rcnn_das-r50_fpn_1x_coco.py'

model = dict(backbone=dict(gate=dict(_delete_=True, type='CBAMGate', reduction=16, kernel_size=7)))
