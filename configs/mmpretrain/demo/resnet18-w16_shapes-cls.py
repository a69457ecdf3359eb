# Plain twin of das-resnet18-w16_shapes-cls.py: the same classifier, data and recipe, no gates
# (exactly mmpretrain's ResNet-18 at a quarter of its width), at its own learning rate.
_base_ = './das-resnet18-w16_shapes-cls.py'

model = dict(backbone=dict(gate_stages=(False, False, False, False)))
# lr: its own best val top-1 of mmdas.demos.CLS_LR_GRID (5e-4, 1e-3, 2e-3, 4e-3, 8e-3), seed 0,
# chosen by `make tune-cls` (val top-1 54.8 / 75.8 / 74.5 / 59.2 / 45.8 %), not the DAS model's.
optim_wrapper = dict(optimizer=dict(lr=1e-3))
