# FCN R-50-D8 on Cityscapes with a DAS gate (alpha 0.2) after each of the four stages of its
# ResNetV1c backbone: mmsegmentation's standard 40k recipe otherwise (4 GPUs x 2 images,
# 512x1024 crops, SGD lr 0.01, poly schedule, ImageNet ResNet-50-V1c weights). Stages 3 and 4
# are dilated (the "D8" of the name), so their gates work at stride 8 like the rest of them.
# `type='DASResNetV1c'` is mmdas's flavour registered in mmseg's own registry (mmseg's ResNet
# arguments: dilations, strides, contract_dilation). The gate as a plugin inside mmseg's own
# ResNetV1c works too: backbone=dict(plugins=[dict(cfg=dict(type='DASGate'), position=...)]).
_base_ = 'mmseg::fcn/fcn_r50-d8_4xb2-40k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='DASResNetV1c',
        gate=dict(type='DASGate', alpha=0.2),
        gate_stages=(True, True, True, True)))
