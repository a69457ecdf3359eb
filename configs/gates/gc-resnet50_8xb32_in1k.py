# ImageNet-1k with GCNet's block (Cao et al., 2019): mmcv's ContextBlock, ratio 1/16 at the DAS
# placement on ResNet-50 (one module after the last block of each stage); recipe as das-
# resnet50_8xb32_in1k.py.
_base_ = '../mmpretrain/das-resnet50_8xb32_in1k.py'

model = dict(backbone=dict(gate=dict(_delete_=True, type='ContextBlock', ratio=1. / 16)))
