# Stage 1 of the two-stage schedule for YOLOX-S: backbone warm-up, by the same rule as
# faster-rcnn_das-r50_fpn_backbone-warmup-1e_coco.py (mmdas.engine.backbone_warmup_cfg, tested):
# everything but the backbone frozen, one epoch, linear lr warm-up over 500 iterations. YOLOX's
# own hooks stay: its EMA averages the frozen heads into themselves; its mode switch fires at
# once (YOLOXModeSwitchHook switches when epoch + 1 >= max_epochs - 15), so the warm-up trains
# as YOLOX's last 15 epochs do, without mosaic and mixup and with the L1 loss; SyncNormHook only
# matters on several GPUs. Start it from a trained YOLOX-S: tools/train_two_stage.py ...
# --stage1-load-from CKPT.
_base_ = './yolox_das-s_8xb8-300e_coco.py'

model = dict(type='BackboneWarmup', detector='YOLOX')
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
]
load_from = None
