"""A whole mmdet detector as one traceable module: the image in, ``dets`` and ``labels`` out
(and ``masks`` for Mask R-CNN), with standard ONNX operators only.

It re-states mmdet 3.3's test-time path (``predict`` with ``rescale=True``) with the operators of
:mod:`mmdas.deployment.graph_ops`, which the TorchScript exporter maps to the standard ONNX
domain as torchvision does for its own detectors (``NonMaxSuppression``, ``RoiAlign``, a dynamic
``TopK``, boolean masks as ``NonZero`` + ``Gather``); the deformable convs export as
``DeformConv`` (:mod:`mmdas.ops.onnx_export`). Every test-time setting is read from the
detector's own ``test_cfg``. The families written (:data:`EXPORTED_DETECTORS`):

* **Faster R-CNN**: backbone and neck; the RPN (per level the top ``nms_pre`` objectness
  scores, deltas decoded and clipped, boxes of zero size dropped, NMS per level,
  ``max_per_img`` proposals); RoI features (each proposal pooled from its own level); the box
  head (softmax, per-class or class-agnostic deltas decoded and clipped, background dropped,
  ``score_thr``, class-wise NMS, ``max_per_img``), boxes divided by the resize factors.
* **Cascade R-CNN**: the same RPN; each stage pools the current boxes with its own extractor,
  and all but the last regress them class-agnostically (the argmax label, background left
  out, as ``regress_by_class``); the stages' raw class logits averaged, then softmax, the last
  stage's deltas decoded (``CascadeRoIHead.predict_bbox``).
* **Mask R-CNN**: Faster R-CNN's boxes, then the mask head on the detections' RoIs in the
  resized image's pixels (before the division, as ``StandardRoIHead.predict_mask``), its
  channel of each detection's label through a sigmoid: ``masks`` ``(N, 28, 28)``
  probabilities. Pasting them into the image (mmdet's ``_do_paste_mask``: ``grid_sample``,
  bilinear, ``align_corners=False``) and the ``mask_thr_binary`` threshold are NumPy, in
  :mod:`mmdas.deployment.onnx_infer`.
* **RetinaNet, FCOS and RTMDet** (``BaseDenseHead.predict_by_feat``): per level, the class
  scores (sigmoid) above ``score_thr``, the top ``nms_pre`` (prior, class) pairs of the level
  (``filter_scores_and_topk``), their priors' deltas (RetinaNet) or distances (FCOS, RTMDet)
  decoded and clipped; then boxes divided by the resize factors, FCOS's centerness (sigmoid)
  multiplied into the scores, boxes not wider and higher than ``min_bbox_size`` dropped,
  class-wise NMS, ``max_per_img``.

What differs from mmdet, by construction: nothing in the arithmetic; ties in a top-k or an NMS
may be broken in another order, and ONNX Runtime's kernels round differently from PyTorch's
(:func:`mmdas.deployment.parity.compare_with_mmdet` checks the file against mmdet's own
``test_step``).
"""
import os.path as osp
import shutil
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from mmdas.apis import model_cfg
from .graph_ops import (WH_RATIO_CLIP, batched_nms, decode_deltas, decode_distances,
                        filter_scores_and_topk, name_probes, probe, roi_features, topk_count)

#: Names of the graph's inputs and outputs (outputs as mmdeploy names them).
INPUT_NAMES = ['image', 'image_info']
OUTPUT_NAMES = ['dets', 'labels']
MASK_OUTPUT_NAMES = OUTPUT_NAMES + ['masks']
#: The runtime's name beside an exported file.
RUNTIME = 'onnx_infer.py'

#: The detector families whose whole graph mmdas writes, by class name.
TWO_STAGE_DETECTORS = ('FasterRCNN', 'MaskRCNN', 'CascadeRCNN')
DENSE_DETECTORS = ('RetinaNet', 'FCOS', 'RTMDet')
EXPORTED_DETECTORS = TWO_STAGE_DETECTORS + DENSE_DETECTORS


def _refuse(family: str, reason: str = '') -> ValueError:
    return ValueError(f'whole-detector export covers {", ".join(EXPORTED_DETECTORS)}; {family} '
                      f'is not exported whole{reason}. Export its backbone and neck with '
                      '--backbone-only')


def _check_nms(name: str, cfg) -> None:
    if cfg.nms.get('type', 'nms') != 'nms':
        raise ValueError(f"test_cfg.{name}.nms.type={cfg.nms['type']!r}: the export writes "
                         "ONNX's NonMaxSuppression, i.e. type='nms' only")


def _check_coder(coder, expected: str) -> None:
    if type(coder).__name__ != expected or not coder.clip_border or \
            getattr(coder, 'add_ctr_clamp', False):
        raise ValueError(f'whole-detector export covers {expected} with clip_border=True and '
                         f'add_ctr_clamp=False here, got {coder!r}')


def detector_graph(detector: nn.Module) -> nn.Module:
    """The traceable graph of ``detector`` (an mmdet detector of :data:`EXPORTED_DETECTORS`);
    any other family is refused by name before tracing."""
    family = type(detector).__name__
    if family in TWO_STAGE_DETECTORS:
        return TwoStageDetectorGraph(detector)
    if family in DENSE_DETECTORS:
        return DenseDetectorGraph(detector)
    raise _refuse(family)


class TwoStageDetectorGraph(nn.Module):
    """``(image, image_info) -> (dets, labels[, masks])`` of Faster, Cascade or Mask R-CNN.

    ``image``: ``(1, 3, H, W)`` float32, resized, normalised and padded as the config's test
    pipeline and data preprocessor do (``preprocess`` in ``mmdas/deployment/onnx_infer.py``);
    ``image_info``: ``(4, )`` float32, the image's height and width as mmdet's ``img_shape``
    has them (resized; after a test pipeline's fixed-size ``Pad``, RTMDet's, padded; before the
    data preprocessor's padding), where boxes are clipped, and the resize factors
    ``(scale_x, scale_y)``. ``dets``: ``(N, 5)``, ``x1, y1, x2, y2,
    score`` in the input image's pixels; ``labels``: ``(N, )`` int64; ``masks`` (Mask R-CNN):
    ``(N, M, M)`` float32, each detection's mask probabilities over its box.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        family = type(detector).__name__
        if family not in TWO_STAGE_DETECTORS:
            raise _refuse(family, ' as a two-stage detector')
        self.detector = detector
        self.rpn_cfg, self.rcnn_cfg = detector.test_cfg.rpn, detector.test_cfg.rcnn
        roi_head = detector.roi_head
        if getattr(roi_head, 'with_shared_head', False):
            raise _refuse(family, ' with a shared RoI head (the C4 layouts)')
        self.with_mask = family == 'MaskRCNN'
        cascade = family == 'CascadeRCNN'
        self.box_heads = list(roi_head.bbox_head) if cascade else [roi_head.bbox_head]
        self.extractors = list(roi_head.bbox_roi_extractor) if cascade else \
            [roi_head.bbox_roi_extractor]
        for name, cfg in (('rpn', self.rpn_cfg), ('rcnn', self.rcnn_cfg)):
            _check_nms(name, cfg)
        _check_coder(detector.rpn_head.bbox_coder, 'DeltaXYWHBBoxCoder')
        for head in self.box_heads:
            _check_coder(head.bbox_coder, 'DeltaXYWHBBoxCoder')
            if head.custom_cls_channels:
                raise ValueError(f'{type(head).__name__} uses custom class channels: not exported')
        if self.with_mask:
            self.mask_extractor = roi_head.mask_roi_extractor if not roi_head.share_roi_extractor \
                else roi_head.bbox_roi_extractor

    def forward(self, image: Tensor, image_info: Tensor) -> Tuple[Tensor, ...]:
        feats = self.detector.extract_feat(image)
        img_hw, scale = image_info[:2], image_info[2:].repeat(2)
        cls_score, bbox_pred, rois = self.box_outputs(feats, self.proposals(feats, img_hw), img_hw)
        boxes, scores, labels = self.detect(cls_score, bbox_pred, rois, image_info)
        if not self.with_mask:
            return torch.cat((boxes, scores[:, None]), 1), labels
        masks = self.masks(feats, boxes, labels)
        return torch.cat((boxes / scale, scores[:, None]), 1), labels, masks

    def proposals(self, feats: Sequence[Tensor], img_hw: Tensor) -> Tensor:
        """The RPN's proposals ``(P, 4)`` in resized-image pixels (mmdet's ``RPNHead``)."""
        head, cfg = self.detector.rpn_head, self.rpn_cfg
        cls_scores, bbox_preds = head(feats)
        cls_scores = [probe(s, f'rpn_cls.{i}') for i, s in enumerate(cls_scores)]
        bbox_preds = [probe(b, f'rpn_reg.{i}') for i, b in enumerate(bbox_preds)]
        priors = head.prior_generator.grid_priors([s.shape[-2:] for s in cls_scores],
                                                  dtype=cls_scores[0].dtype,
                                                  device=cls_scores[0].device)
        coder = head.bbox_coder
        scores, boxes, levels = [], [], []
        for level, (cls_score, bbox_pred,
                    anchors) in enumerate(zip(cls_scores, bbox_preds, priors)):
            score = cls_score[0].permute(1, 2, 0).reshape(-1)
            if head.use_sigmoid_cls:
                score = score.sigmoid()
            else:  # two-class softmax: the first column is the object
                score = score.reshape(-1, 2).softmax(-1)[:, 0]
            delta = bbox_pred[0].permute(1, 2, 0).reshape(-1, 4)
            top, index = score.topk(topk_count(score, cfg.nms_pre))
            scores.append(top)
            boxes.append(
                decode_deltas(anchors[index], delta[index], coder.means, coder.stds, WH_RATIO_CLIP,
                              img_hw))
            levels.append(torch.full_like(top, level, dtype=torch.int64))
        scores, boxes, levels = torch.cat(scores), torch.cat(boxes), torch.cat(levels)
        min_size = cfg.get('min_bbox_size', -1)
        if min_size >= 0:
            valid = ((boxes[:, 2] - boxes[:, 0]) > min_size) & (
                (boxes[:, 3] - boxes[:, 1]) > min_size)
            scores, boxes, levels = scores[valid], boxes[valid], levels[valid]
        keep = batched_nms(boxes, scores, levels, cfg.nms.iou_threshold)[:cfg.max_per_img]
        # the scores ride along so that a check can read them (the RoI head takes the boxes)
        return probe(torch.cat((boxes[keep], scores[keep, None]), 1), 'proposals')[:, :4]

    def box_outputs(self, feats: Sequence[Tensor], rois: Tensor,
                    img_hw: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The box head's class logits and deltas, and the boxes they refer to: one stage, or
        Cascade's stages (each but the last regressing the boxes by its argmax class, the
        logits averaged over the stages)."""
        logits = []
        for stage, (head, extractor) in enumerate(zip(self.box_heads, self.extractors)):
            cls_score, bbox_pred = head(roi_features(extractor, feats, rois))
            logits.append(cls_score)
            if stage < len(self.box_heads) - 1:
                label = cls_score[:, :-1].argmax(1)
                coder = head.bbox_coder
                rois = decode_deltas(rois, self._deltas_of(head, bbox_pred, label), coder.means,
                                     coder.stds, WH_RATIO_CLIP, img_hw)
        logits = probe(sum(logits) / float(len(logits)), 'roi_cls')
        return logits, probe(bbox_pred, 'roi_reg'), probe(rois, 'rois')

    @staticmethod
    def _deltas_of(head: nn.Module, bbox_pred: Tensor, label: Tensor) -> Tensor:
        """Each box's deltas for ``label`` (``BBoxHead.regress_by_class``)."""
        if head.reg_class_agnostic:
            return bbox_pred
        index = label.view(-1, 1, 1).expand(-1, 1, 4)
        return bbox_pred.view(bbox_pred.shape[0], -1, 4).gather(1, index).squeeze(1)

    def detect(self, cls_score: Tensor, bbox_pred: Tensor, rois: Tensor,
               image_info: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The last box head's detections (``BBoxHead.predict_by_feat`` with ``multiclass_nms``):
        boxes divided by the resize factors, except for Mask R-CNN, whose mask RoIs are the
        boxes in the resized image."""
        head, cfg = self.box_heads[-1], self.rcnn_cfg
        scores = cls_score.softmax(-1)[:, :-1]  # the last column is the background
        classes = scores.shape[1]
        deltas = bbox_pred.view(-1, 1 if head.reg_class_agnostic else classes, 4)
        coder = head.bbox_coder
        boxes = decode_deltas(rois[:, None, :].expand(-1, classes,
                                                      4), deltas.expand(-1, classes, 4),
                              coder.means, coder.stds, WH_RATIO_CLIP, image_info[:2])
        if not self.with_mask:
            boxes = boxes / image_info[2:].repeat(2)  # (scale_x, scale_y, scale_x, scale_y)
        labels = torch.arange(classes, device=scores.device).expand_as(scores).reshape(-1)
        boxes, scores = boxes.reshape(-1, 4), scores.reshape(-1)
        valid = scores > cfg.score_thr
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        keep = batched_nms(boxes, scores, labels, cfg.nms.iou_threshold)[:cfg.max_per_img]
        return boxes[keep], scores[keep], labels[keep]

    def masks(self, feats: Sequence[Tensor], boxes: Tensor, labels: Tensor) -> Tensor:
        """Each detection's mask probabilities ``(N, M, M)``: the mask head's channel of its
        label (channel 0 if class-agnostic) through a sigmoid (``FCNMaskHead``)."""
        head = self.detector.roi_head.mask_head
        preds = head(roi_features(self.mask_extractor, feats, boxes))
        if head.class_agnostic:
            return preds[:, 0].sigmoid()
        size = preds.shape[-2:]
        index = labels.view(-1, 1, 1, 1).expand(-1, 1, size[0], size[1])
        return preds.gather(1, index).squeeze(1).sigmoid()


class DenseDetectorGraph(nn.Module):
    """``(image, image_info) -> (dets, labels)`` of a one-stage detector, RetinaNet, FCOS or
    RTMDet (inputs and outputs as :class:`TwoStageDetectorGraph`'s)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        family = type(detector).__name__
        if family not in DENSE_DETECTORS:
            raise _refuse(family, ' as a one-stage detector')
        self.detector = detector
        self.head = detector.bbox_head
        self.cfg = self.head.test_cfg
        _check_nms('', self.cfg)
        # RetinaNet regresses anchor deltas; FCOS and RTMDet distances from points (their heads
        # scale them by the stride already)
        self.distances = family != 'RetinaNet'
        _check_coder(self.head.bbox_coder,
                     'DistancePointBBoxCoder' if self.distances else 'DeltaXYWHBBoxCoder')
        if self.cfg.get('nms_pre', -1) <= 0:
            raise ValueError(f"test_cfg.nms_pre={self.cfg.get('nms_pre')}: the export needs a "
                             'positive per-level top-k')
        self.with_score_factors = family == 'FCOS'

    def forward(self, image: Tensor, image_info: Tensor) -> Tuple[Tensor, Tensor]:
        head, cfg = self.head, self.cfg
        outs = [[probe(level, f'{name}.{i}') for i, level in enumerate(out)]
                for name, out in zip(('cls', 'reg',
                                      'centerness'), head(self.detector.extract_feat(image)))]
        cls_scores, bbox_preds = outs[0], outs[1]
        factors = outs[2] if self.with_score_factors else [None] * len(cls_scores)
        priors = head.prior_generator.grid_priors([s.shape[-2:] for s in cls_scores],
                                                  dtype=cls_scores[0].dtype,
                                                  device=cls_scores[0].device)
        all_scores, all_labels, all_boxes, all_factors = [], [], [], []
        for cls_score, bbox_pred, factor, prior in zip(cls_scores, bbox_preds, factors, priors):
            scores = cls_score[0].permute(1, 2, 0).reshape(-1, head.cls_out_channels)
            scores = scores.sigmoid() if head.use_sigmoid_cls else scores.softmax(-1)[:, :-1]
            top, index, labels = filter_scores_and_topk(scores, cfg.get('score_thr', 0),
                                                        cfg.nms_pre)
            pred = bbox_pred[0].permute(1, 2, 0).reshape(-1, 4)[index]
            if self.with_score_factors:
                all_factors.append(factor[0].permute(1, 2, 0).reshape(-1)[index].sigmoid())
            if self.distances:
                all_boxes.append(decode_distances(prior[index], pred, image_info[:2]))
            else:
                coder = head.bbox_coder
                all_boxes.append(
                    decode_deltas(prior[index], pred, coder.means, coder.stds, WH_RATIO_CLIP,
                                  image_info[:2]))
            all_scores.append(top)
            all_labels.append(labels)
        boxes = torch.cat(all_boxes) / image_info[2:].repeat(2)
        scores, labels = torch.cat(all_scores), torch.cat(all_labels)
        # the candidates with their class scores (before FCOS's centerness), for a check to read
        candidates = torch.cat((boxes, scores[:, None], labels[:, None].to(boxes)), 1)
        boxes = probe(candidates, 'candidates')[:, :4]
        if self.with_score_factors:
            scores = scores * torch.cat(all_factors)
        min_size = cfg.get('min_bbox_size', -1)
        if min_size >= 0:
            valid = ((boxes[:, 2] - boxes[:, 0]) > min_size) & (
                (boxes[:, 3] - boxes[:, 1]) > min_size)
            boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        keep = batched_nms(boxes, scores, labels, cfg.nms.iou_threshold)[:cfg.max_per_img]
        return torch.cat((boxes[keep], scores[keep, None]), 1), labels[keep]


#: The test pipeline steps the file's preprocessing does (``onnx_infer.preprocess``).
PIPELINE_STEPS = ('LoadImageFromFile', 'LoadImageFromNDArray', 'LoadAnnotations', 'Resize', 'Pad',
                  'PackDetInputs')


def preprocessing_metadata(cfg) -> Dict[str, str]:
    """How an image becomes the graph's inputs, from the config's test pipeline and data
    preprocessor, written into the ONNX file for :func:`preprocess` to read back."""
    pipeline = cfg.test_dataloader.dataset.pipeline

    def step(name: str) -> Optional[dict]:  # the first step of that type (any registry scope)
        return next((t for t in pipeline if t['type'].split('.')[-1] == name), None)

    other = [t['type'] for t in pipeline if t['type'].split('.')[-1] not in PIPELINE_STEPS]
    if other:
        raise ValueError(f'whole-detector export reads the test pipeline steps {PIPELINE_STEPS}; '
                         f'this config has {other} too, which the file would not do')
    resize = step('Resize')
    if resize is None or not resize.get('keep_ratio', False):
        raise ValueError('whole-detector export expects a keep-ratio Resize in the test pipeline')
    pad = step('Pad')
    if pad is not None and (pad.get('size') is None or pad.get('size_divisor')
                            or pad.get('pad_to_square')
                            or pad.get('padding_mode', 'constant') != 'constant'):
        raise ValueError(f'whole-detector export covers Pad(size=(w, h), pad_val=...) only, '
                         f'got {pad}')
    pre = model_cfg(cfg).get('data_preprocessor') or {}
    meta = {}
    if pad is not None:  # mmdet's Pad: bottom and right, in the image's pixel values
        value = pad.get('pad_val', dict(img=0))
        value = value.get('img', 0) if isinstance(value, dict) else value
        meta = dict(pad_size=str(list(pad['size'])), pad_pixel=str(value))
    return dict(
        meta,
        scale=str(list(resize['scale'])),
        mean=str(list(pre.get('mean', [0, 0, 0]))),
        std=str(list(pre.get('std', [1, 1, 1]))),
        bgr_to_rgb=str(bool(pre.get('bgr_to_rgb', False))),
        size_divisor=str(pre.get('pad_size_divisor', 1)),
        pad_value=str(pre.get('pad_value', 0)),
        inputs='image: (1, 3, H, W) float32, keep-ratio resized to fit scale (bilinear), '
        '(pixel - mean) / std, zero-padded to a multiple of size_divisor; image_info: '
        '(height, width as mmdet clips boxes: resized, after a fixed-size Pad; scale_x, '
        'scale_y) float32',
        outputs='dets: (N, 5) x1, y1, x2, y2, score in the input image\'s pixels; '
        'labels: (N,) int64')


def export_detector(model: nn.Module,
                    path: str,
                    image_bgr: np.ndarray,
                    opset: int = 19,
                    metadata: Optional[Dict[str, str]] = None) -> str:
    """Export ``model`` (an mmdet detector of :data:`EXPORTED_DETECTORS` built from
    ``model.cfg``, as :func:`mmdas.apis.init_model` gives it) whole to ``path``, traced on
    ``image_bgr``; height and width stay free. The preprocessing, the class names and (Mask
    R-CNN) the mask threshold go into the file's metadata. The torch-free runtime
    (:mod:`.onnx_infer`) is written beside it as ``onnx_infer.py``: the two files are all a
    deployment machine needs."""
    import onnx

    from . import onnx_infer
    from .onnx_infer import preprocess
    graph = detector_graph(model).eval()  # refuses an unsupported family before anything else
    meta = dict(preprocessing_metadata(model.cfg), **(metadata or {}))
    meta['classes'] = str(list(model.dataset_meta.get('classes', ())))
    names = OUTPUT_NAMES
    if getattr(graph, 'with_mask', False):
        names = MASK_OUTPUT_NAMES
        meta['mask_thr_binary'] = str(float(graph.rcnn_cfg.mask_thr_binary))
        meta['outputs'] += "; masks: (N, M, M) float32 mask probabilities over each box"
    axes = {name: {0: 'detections'} for name in names}
    axes['image'] = {2: 'height', 3: 'width'}
    image, info = preprocess(image_bgr, meta)
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer's notes on Python values in the graph: the top-k size and mmdet's own
        # shape checks, which hold for every input
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(
            graph,
            (torch.from_numpy(image), torch.from_numpy(info)),
            path,
            dynamo=False,  # torch.export cannot trace the data-dependent NMS paths yet
            opset_version=opset,
            input_names=INPUT_NAMES,
            output_names=names,
            dynamic_axes=axes)
    proto = onnx.load(path)
    name_probes(proto)
    onnx.helper.set_model_props(proto, meta)
    onnx.save(proto, path)
    shutil.copyfile(onnx_infer.__file__, osp.join(osp.dirname(osp.abspath(path)), RUNTIME))
    return path


def mmdet_detections(model: nn.Module, image_bgr: np.ndarray) -> Tuple[np.ndarray, ...]:
    """mmdet's own detections of ``image_bgr`` (``inference_detector``: the config's test
    pipeline and ``model.test_step``), as ``(dets (N, 5), labels (N,))``, with ``masks (N, H,
    W)`` bool in the image's pixels for a detector with a mask head."""
    from mmdet.apis import inference_detector
    pred = inference_detector(model, image_bgr).pred_instances
    dets = np.concatenate((pred.bboxes.numpy(), pred.scores.numpy()[:, None]), 1)
    out = (dets.astype(np.float32), pred.labels.numpy().astype(np.int64))
    return out + (pred.masks.numpy().astype(bool), ) if 'masks' in pred else out


def onnx_detections(session, image_bgr: np.ndarray) -> Tuple[np.ndarray, ...]:
    """The ONNX file's detections of ``image_bgr`` in an ONNX Runtime ``session``, as
    :func:`mmdet_detections` gives them (``detect`` of ``mmdas/deployment/onnx_infer.py``)."""
    from .onnx_infer import detect
    return detect(session, image_bgr)


__all__: List[str] = [
    'DENSE_DETECTORS', 'EXPORTED_DETECTORS', 'INPUT_NAMES', 'MASK_OUTPUT_NAMES', 'OUTPUT_NAMES',
    'TWO_STAGE_DETECTORS', 'DenseDetectorGraph', 'TwoStageDetectorGraph', 'detector_graph',
    'export_detector', 'mmdet_detections', 'onnx_detections', 'preprocessing_metadata'
]
