# ImageNet-1k with CAT (Wu et al., IET CV 2023; our reading of its text, see
# mmdas/models/plugins/cat_gate.py) at the DAS placement on ResNet-50 (one module after the last
# block of each stage); recipe as das-resnet50_8xb32_in1k.py.
_base_ = '../mmpretrain/das-resnet50_8xb32_in1k.py'

model = dict(backbone=dict(gate=dict(_delete_=True, type='CATGate', reduction=16, kernel_size=7)))
