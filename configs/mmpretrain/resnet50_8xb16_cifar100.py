# Plain baseline of das-resnet50_8xb16_cifar100.py: the same config and recipe, no DAS gates
# (DASResNet with every gate off is exactly the framework's ResNet).
_base_ = './das-resnet50_8xb16_cifar100.py'

model = dict(backbone=dict(gate_stages=(False, False, False, False)))
