# Faster R-CNN FPN 1x COCO with DANet's position and channel attention (Fu et al., CVPR 2019) at
# the DAS placement: one module after the last block of each ResNet-50 stage, where DAS puts its
# gates. Everything else (recipe, schedule, ImageNet init) is the DAS-R50 config's. Stage 1
# (stride 4) takes no DANet module here: its position attention over a 1333x800 image would be a
# (334 * 200)^2 matrix, 18 GB per image; stages 2-4 keep the DAS placement.
_base_ = '../das/faster-rcnn_das-r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        gate_stages=(False, True, True, True),
        gate=dict(_delete_=True, type='DANetGate', reduction=8)))
