# Plain baseline of das-resnet101_8xb32_in1k.py: the same config and recipe, no DAS gates
# (DASResNet with every gate off is exactly the framework's ResNet).
_base_ = './das-resnet101_8xb32_in1k.py'

model = dict(backbone=dict(gate_stages=(False, False, False, False)))
