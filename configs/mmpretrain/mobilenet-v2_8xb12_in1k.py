# Plain baseline of das-mobilenet-v2_8xb12_in1k.py: same config and recipe, no DAS gates.
_base_ = './das-mobilenet-v2_8xb12_in1k.py'

model = dict(backbone=dict(gate_indices=()))
