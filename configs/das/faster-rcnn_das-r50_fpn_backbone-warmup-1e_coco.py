# Stage 1 of the two-stage schedule: backbone warm-up.
#
# The freshly inserted DAS gates start random and disturb the pretrained features ("noise" in
# the paper). For one epoch only the backbone (its ImageNet weights and the new gates) trains:
# the model is the stage-2 detector built through mmdas's BackboneWarmup, which freezes neck,
# RPN and RoI head (requires_grad=False, before DDP wraps the model), so they stay
# bit-identical and take no part in backward or in gradient clipping. One epoch of COCO (~7.3k
# iterations at batch 16) is our choice (the paper gives no length): the gates adapt to a fixed
# detector, and it is short next to stage 2 (`faster-rcnn_das-r50_fpn_1x_coco.py`, the full
# 12-epoch 1x recipe), which starts from these weights.
#
# It must start from a trained vanilla Faster R-CNN of the same config family (the frozen heads
# have to be good): tools/train_two_stage.py takes it as --stage1-load-from CKPT (or set
# load_from here), e.g. mmdet's model-zoo faster-rcnn_r50_fpn_1x_coco checkpoint; with neither,
# the tool stops before building anything.
_base_ = './faster-rcnn_das-r50_fpn_1x_coco.py'

model = dict(type='BackboneWarmup', detector='FasterRCNN')
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
]
load_from = None
