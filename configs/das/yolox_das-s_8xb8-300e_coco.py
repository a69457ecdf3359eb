# YOLOX-S with DAS gates after the four stages of its CSPDarknet backbone (alpha 0.2): mmdet's
# `yolox/yolox_s_8xb8-300e_coco.py` with only the backbone changed (GatedBackbone builds mmdet's
# own CSPDarknet with these arguments; each gate's width comes from its stage). Stage 2 of the
# two-stage schedule (stage 1: yolox_das-s_backbone-warmup-1e_coco.py).
_base_ = 'mmdet::yolox/yolox_s_8xb8-300e_coco.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='GatedBackbone',
        host='CSPDarknet',
        stages=('stage1', 'stage2', 'stage3', 'stage4'),
        gate=dict(type='DASGate', alpha=0.2)))
