# FCOS (GN head) 1x COCO with a DAS-ResNet-50 backbone (four DAS gates, alpha 0.2): mmdet's
# `fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py` with only the backbone type changed. It keeps
# FCOS's caffe style (`style='caffe'`, frozen BatchNorm) and its caffe-style pretrained backbone
# (`open-mmlab://detectron/resnet50_caffe`, caffe mean and no std in the data preprocessor); the
# gates, new, train in every stage. Stage 2 of the two-stage schedule (stage 1:
# fcos_das-r50-caffe_fpn_gn-head_backbone-warmup-1e_coco.py; docs/training.md).
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
custom_imports = dict(imports=['mmdas'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='DASResNet',
        gate=dict(type='DASGate', alpha=0.2),
        gate_stages=(True, True, True, True)))
