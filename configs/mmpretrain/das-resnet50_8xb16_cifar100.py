# CIFAR-100 with DAS-ResNet-50; recipe as das-resnet18_8xb16_cifar100.py.
_base_ = './das-resnet18_8xb16_cifar100.py'

model = dict(backbone=dict(depth=50), head=dict(in_channels=2048))
