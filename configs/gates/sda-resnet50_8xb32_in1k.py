# ImageNet-1k with SDA-ResNet-50 (SDA-xNet's stage-wise depth attention on the ResNet-50 layout,
# mmdas's SDAResNet); recipe as das-resnet50_8xb32_in1k.py.
_base_ = '../mmpretrain/das-resnet50_8xb32_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True, type='SDAResNet', depth=50, num_stages=4, out_indices=(
            3, ), style='pytorch'))
