# ImageNet-1k with Triplet Attention (Misra et al., WACV 2021) at the DAS placement on ResNet-50
# (one module after the last block of each stage); recipe as das-resnet50_8xb32_in1k.py.
_base_ = '../mmpretrain/das-resnet50_8xb32_in1k.py'

model = dict(backbone=dict(gate=dict(_delete_=True, type='TripletAttentionGate', kernel_size=7)))
