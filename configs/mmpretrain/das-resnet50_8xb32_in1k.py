# ImageNet-1k with DAS-ResNet-50; recipe as das-resnet18_8xb32_in1k.py (paper: 78.04 top-1).
_base_ = './das-resnet18_8xb32_in1k.py'

model = dict(backbone=dict(depth=50), head=dict(in_channels=2048))
