# ConvNeXt-T with DAS gates after its four stages (alpha 0.2) on ImageNet-1k: mmpretrain's
# `convnext/convnext-tiny_32xb128_in1k.py` with only the backbone changed. GatedBackbone builds
# mmpretrain's own ConvNeXt with these arguments (a plain ConvNeXt-T checkpoint loads, the gates
# reported new); each gate's width comes from its stage. Not trained here.
_base_ = 'mmpretrain::convnext/convnext-tiny_32xb128_in1k.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='GatedBackbone',
        host='ConvNeXt',
        stages=('stages.0', 'stages.1', 'stages.2', 'stages.3'),
        gate=dict(type='DASGate', alpha=0.2)))
