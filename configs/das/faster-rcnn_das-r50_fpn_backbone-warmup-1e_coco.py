# Stage 1 of the two-stage schedule: backbone warm-up.
#
# The freshly inserted DAS gates start random and disturb the pretrained features ("noise" in
# the paper). For one epoch only the backbone (its ImageNet weights and the new gates) trains;
# neck, RPN and RoI head get lr 0 and weight decay 0, so they stay bit-identical. One epoch of
# COCO (~7.3k iterations at batch 16) is our choice (the paper gives no length): the gates adapt
# to a fixed detector, and it is short next to stage 2 (`faster-rcnn_das-r50_fpn_1x_coco.py`,
# the full 12-epoch 1x recipe), which starts
# from these weights. Best started from a trained vanilla Faster R-CNN so the heads are
# already good: set `load_from` (or pass `--stage1-load-from` to tools/train_two_stage.py);
# with `load_from = None` it starts from the ImageNet backbone alone.
_base_ = './faster-rcnn_das-r50_fpn_1x_coco.py'

frozen = dict(lr_mult=0.0, decay_mult=0.0)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={
        'neck.': frozen,
        'rpn_head.': frozen,
        'roi_head.': frozen
    }))

train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
]
load_from = None
