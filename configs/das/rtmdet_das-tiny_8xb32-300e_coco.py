# RTMDet-tiny with DAS gates after the four stages of its CSPNeXt backbone (alpha 0.2): mmdet's
# `rtmdet/rtmdet_tiny_8xb32-300e_coco.py` with only the backbone changed. GatedBackbone builds
# mmdet's own CSPNeXt with these arguments (its ImageNet checkpoint loads, the gates reported
# new); each gate's width comes from its stage. Stage 2 of the two-stage schedule (stage 1:
# rtmdet_das-tiny_backbone-warmup-1e_coco.py; docs/backbones.md, "DAS in any backbone").
_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='GatedBackbone',
        host='CSPNeXt',
        stages=('stage1', 'stage2', 'stage3', 'stage4'),
        gate=dict(type='DASGate', alpha=0.2)))
