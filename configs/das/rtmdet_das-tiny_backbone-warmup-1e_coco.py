# Stage 1 of the two-stage schedule for RTMDet-tiny: backbone warm-up, by the same rule as
# faster-rcnn_das-r50_fpn_backbone-warmup-1e_coco.py (mmdas.engine.backbone_warmup_cfg, tested):
# everything but the backbone frozen (requires_grad=False), one epoch, linear lr warm-up over
# 500 iterations. RTMDet's own hooks stay: its EMA averages the frozen heads into themselves, and
# its pipeline switch (epoch 280) does not come in one epoch (the warm-up sees the mosaic
# pipeline). Start it from a trained RTMDet-tiny: tools/train_two_stage.py ... --stage1-load-from.
_base_ = './rtmdet_das-tiny_8xb32-300e_coco.py'

model = dict(type='BackboneWarmup', detector='RTMDet')
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
]
load_from = None
