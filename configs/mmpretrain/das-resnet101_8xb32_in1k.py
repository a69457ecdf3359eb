# ImageNet-1k with DAS-ResNet-101; recipe as das-resnet18_8xb32_in1k.py.
_base_ = './das-resnet18_8xb32_in1k.py'

model = dict(backbone=dict(depth=101), head=dict(in_channels=2048))
