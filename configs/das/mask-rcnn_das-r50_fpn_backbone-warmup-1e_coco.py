# Stage 1 of the two-stage schedule for MaskRCNN: backbone warm-up, by the same rule as
# faster-rcnn_das-r50_fpn_backbone-warmup-1e_coco.py (what mmdas.engine.backbone_warmup_cfg
# derives, tested): the stage-2 detector built through BackboneWarmup (everything but the
# backbone frozen, requires_grad=False), one epoch, linear lr warm-up over 500 iterations.
# Start it from that family's trained vanilla detector (mmdet's model-zoo checkpoint of the
# same config): tools/train_two_stage.py ... --stage1-load-from CKPT.
_base_ = './mask-rcnn_das-r50_fpn_1x_coco.py'

model = dict(type='BackboneWarmup', detector='MaskRCNN')
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
]
load_from = None
