# ImageNet-1k with ECA (Wang et al., CVPR 2020; kernel size adapted to the channels) at the DAS
# placement on ResNet-50 (one module after the last block of each stage); recipe as das-
# resnet50_8xb32_in1k.py.
_base_ = '../mmpretrain/das-resnet50_8xb32_in1k.py'

model = dict(backbone=dict(gate=dict(_delete_=True, type='ECAGate')))
