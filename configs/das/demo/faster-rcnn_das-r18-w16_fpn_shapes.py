# The DAS twin of faster-rcnn_r18-w16_fpn_shapes.py: the same detector and schedule, with a
# DAS gate (alpha 0.2) after each of the four ResNet stages.
_base_ = './faster-rcnn_r18-w16_fpn_shapes.py'

model = dict(
    backbone=dict(
        type='DASResNet',
        gate=dict(type='DASGate', alpha=0.2),
        gate_stages=(True, True, True, True)))
