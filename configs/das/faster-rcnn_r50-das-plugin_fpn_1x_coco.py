# DASGate as an mmcv plugin in a stock mmdet ResNet-50: a gate after conv3 of every Bottleneck
# of stages 2-4 (the paper's costlier "gate after every block" variant). Unlike DASResNet's gate
# after the residual sum, `after_conv3` gates the residual branch before the sum.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='DASGate', alpha=0.2),
            stages=(False, True, True, True),
            position='after_conv3')
    ]))
