# Plain twin of das-resnet18-w16_shapes-cls.py: the same classifier, data and recipe, no gates
# (exactly mmpretrain's ResNet-18 at a quarter of its width), at its own learning rate.
_base_ = './das-resnet18-w16_shapes-cls.py'

model = dict(backbone=dict(gate_stages=(False, False, False, False)))
# lr 1e-3: its own best val top-1 of das_bench.CLS_LR_GRID (5e-4, 1e-3, 2e-3, 4e-3, 8e-3), seed
# 0, chosen on val by `make tune-cls`, not the DAS model's; figures: docs/results.md.
optim_wrapper = dict(optimizer=dict(lr=1e-3))
