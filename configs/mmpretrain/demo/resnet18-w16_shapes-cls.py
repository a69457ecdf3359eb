# Plain twin of das-resnet18-w16_shapes-cls.py: the same classifier, data and recipe, no gates
# (exactly mmpretrain's ResNet-18 at a quarter of its width).
_base_ = './das-resnet18-w16_shapes-cls.py'

model = dict(backbone=dict(gate_stages=(False, False, False, False)))
