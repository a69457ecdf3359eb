"""A whole mmdet two-stage detector (Faster R-CNN family) as one traceable module: the image in,
``dets`` and ``labels`` out, with standard ONNX operators only.

It re-states mmdet 3.3's test-time path (``TwoStageDetector.predict`` with ``rescale=True``)
with ops the TorchScript exporter maps to the standard ONNX domain, as torchvision does for its
own Faster R-CNN: ``torchvision.ops.nms`` -> ``NonMaxSuppression``, ``torchvision.ops.roi_align``
-> ``RoiAlign`` (opset >= 16 carries mmcv's ``aligned=True`` as ``half_pixel``), a dynamic
top-k, boolean masks -> ``NonZero`` + ``Gather``. The deformable convs export as ``DeformConv``
(:mod:`mmdas.ops.onnx_export`). Every test-time setting is read from the detector's own
``test_cfg`` (``rpn.nms_pre``, ``rpn.nms.iou_threshold``, ``rpn.max_per_img``,
``rpn.min_bbox_size``, ``rcnn.score_thr``, ``rcnn.nms.iou_threshold``, ``rcnn.max_per_img``).

Step by step, as mmdet computes it:

1. backbone and neck;
2. RPN: per level, the anchors of mmdet's own prior generator, the objectness (sigmoid), the top
   ``nms_pre`` of the level, box deltas decoded (``DeltaXYWHBBoxCoder``: means, stds,
   ``wh_ratio_clip``) and clipped to the resized image; boxes of zero width or height dropped;
   NMS per level (mmdet's ``batched_nms`` with the level as the class: the same offset trick);
   the first ``max_per_img`` proposals;
3. RoI features: each proposal's level ``floor(log2(sqrt(area) / finest_scale + 1e-6))``, clamped;
   ``RoiAlign`` of every level's map, each proposal taking its own level's (mmcv's ``RoIAlign``
   with ``aligned=True`` and adaptive sampling, ``sampling_ratio=0``);
4. RoI head: class scores (softmax) and per-class deltas decoded, clipped, rescaled to the input
   image's pixels; background dropped; scores above ``score_thr``; NMS per class (offset
   trick); the first ``max_per_img``.

What differs from mmdet, by construction: nothing in the arithmetic; ties in a top-k or an NMS
may be broken in another order, and ONNX Runtime's kernels round differently from PyTorch's
(:func:`match_detections` measures both against mmdet's own ``test_step``).
"""
import math
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torchvision
from torch import Tensor

from mmdas.apis import model_cfg

#: Names of the graph's inputs and outputs (outputs as mmdeploy names them).
INPUT_NAMES = ['image', 'image_info']
#: ``DeltaXYWHBBoxCoder.decode``'s default, which mmdet's heads do not override.
WH_RATIO_CLIP = 16 / 1000
OUTPUT_NAMES = ['dets', 'labels']

#: The detector families whose whole graph mmdas writes, by class name.
EXPORTED_DETECTORS = ('FasterRCNN', )


def _topk_count(values: Tensor, k: int) -> Tensor:
    """``min(k, len(values))``, kept dynamic under tracing (ONNX's TopK needs K <= the size)."""
    if not torch.jit.is_tracing():
        return torch.tensor(min(k, values.shape[0]))
    size = torch._shape_as_tensor(values)[:1]
    return torch.min(torch.cat((torch.tensor([k], dtype=size.dtype), size)))


def decode_deltas(anchors: Tensor, deltas: Tensor, means: Sequence[float], stds: Sequence[float],
                  wh_ratio_clip: float, img_hw: Tensor) -> Tensor:
    """mmdet's ``delta2bbox`` (``DeltaXYWHBBoxCoder.decode``, ``clip_border=True``) for
    ``anchors`` ``(..., 4)`` and ``deltas`` ``(..., 4)``, clipped to ``img_hw`` (a tensor)."""
    deltas = deltas * deltas.new_tensor(stds) + deltas.new_tensor(means)
    centre = (anchors[..., :2] + anchors[..., 2:]) * 0.5
    size = anchors[..., 2:] - anchors[..., :2]
    max_ratio = abs(math.log(wh_ratio_clip))
    new_centre = centre + size * deltas[..., :2]
    new_size = size * deltas[..., 2:].clamp(min=-max_ratio, max=max_ratio).exp()
    top_left, bottom_right = new_centre - new_size * 0.5, new_centre + new_size * 0.5
    h, w = img_hw[0], img_hw[1]
    x1 = torch.min(torch.clamp(top_left[..., 0], min=0), w)
    y1 = torch.min(torch.clamp(top_left[..., 1], min=0), h)
    x2 = torch.min(torch.clamp(bottom_right[..., 0], min=0), w)
    y2 = torch.min(torch.clamp(bottom_right[..., 1], min=0), h)
    return torch.stack((x1, y1, x2, y2), -1)


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """Indices kept by NMS within each group, by decreasing score: mmdet's ``batched_nms``
    (boxes of different groups offset apart by the largest coordinate + 1, one NMS)."""
    largest = torch.cat((boxes.reshape(-1), boxes.new_zeros(1))).max()  # 0 when no boxes
    offsets = groups.to(boxes) * (largest + 1)
    return torchvision.ops.nms(boxes + offsets[:, None], scores, iou_threshold)


class TwoStageDetectorGraph(nn.Module):
    """``(image, image_info) -> (dets, labels)`` of an mmdet two-stage detector, traceable.

    ``image``: ``(1, 3, H, W)`` float32, resized, normalised and padded as the config's test
    pipeline and data preprocessor do (:func:`preprocess` beside this module, in NumPy);
    ``image_info``: ``(4, )`` float32, the resized image's height and width (before padding)
    and the resize factors ``(scale_x, scale_y)``. ``dets``: ``(N, 5)``, ``x1, y1, x2, y2,
    score`` in the input image's pixels; ``labels``: ``(N, )`` int64.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        family = type(detector).__name__
        if family not in EXPORTED_DETECTORS:
            raise ValueError(f'whole-detector export covers {", ".join(EXPORTED_DETECTORS)}; '
                             f'{family} is not exported whole (its graph is not written). '
                             'Export its backbone and neck with --backbone-only')
        for part in ('rpn_head', 'roi_head'):
            if not hasattr(detector, part):
                raise ValueError('whole-detector export covers two-stage detectors with an RPN '
                                 f'and an RoI head (Faster R-CNN family); '
                                 f'{type(detector).__name__} has no {part}. Export its backbone '
                                 'and neck with --backbone-only')
        self.detector = detector
        self.rpn_cfg, self.rcnn_cfg = detector.test_cfg.rpn, detector.test_cfg.rcnn
        roi_head = detector.roi_head
        if getattr(roi_head, 'with_mask', False) or not isinstance(roi_head.bbox_head, nn.Module):
            raise ValueError('whole-detector export covers Faster R-CNN-style RoI heads (one box '
                             f'head, no masks); {type(roi_head).__name__} is not one. Export the '
                             'backbone and neck with --backbone-only')
        for name, cfg in (('rpn', self.rpn_cfg), ('rcnn', self.rcnn_cfg)):
            if cfg.nms.get('type', 'nms') != 'nms':
                raise ValueError(f"test_cfg.{name}.nms.type={cfg.nms['type']!r}: the export writes "
                                 "ONNX's NonMaxSuppression, i.e. type='nms' only")
        bbox_head = roi_head.bbox_head
        if getattr(bbox_head, 'reg_class_agnostic', False):
            raise ValueError('class-agnostic box regression is not covered by the export')
        for coder in (detector.rpn_head.bbox_coder, bbox_head.bbox_coder):
            if type(coder).__name__ != 'DeltaXYWHBBoxCoder' or not coder.clip_border or \
                    coder.add_ctr_clamp:
                raise ValueError('whole-detector export covers DeltaXYWHBBoxCoder with '
                                 f'clip_border=True and add_ctr_clamp=False, got {coder!r}')
        self.extractor = detector.roi_head.bbox_roi_extractor

    def forward(self, image: Tensor, image_info: Tensor) -> Tuple[Tensor, Tensor]:
        feats = self.detector.extract_feat(image)
        proposals = self.proposals(feats, image_info[:2])
        return self.detect(feats, proposals, image_info)

    def proposals(self, feats: Sequence[Tensor], img_hw: Tensor) -> Tensor:
        """The RPN's proposals ``(P, 4)`` in resized-image pixels (mmdet's ``RPNHead``)."""
        head, cfg = self.detector.rpn_head, self.rpn_cfg
        cls_scores, bbox_preds = head(feats)
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
            top, index = score.topk(_topk_count(score, cfg.nms_pre))
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
        return boxes[keep]

    def roi_features(self, feats: Sequence[Tensor], proposals: Tensor) -> Tensor:
        """mmdet's ``SingleRoIExtractor``: each proposal pooled from its own level's map."""
        extractor = self.extractor
        count = extractor.num_inputs
        area = (proposals[:, 2] - proposals[:, 0]) * (proposals[:, 3] - proposals[:, 1])
        level = torch.floor(torch.log2(torch.sqrt(area) / extractor.finest_scale + 1e-6))
        level = level.clamp(min=0, max=count - 1)
        rois = torch.cat((torch.zeros_like(proposals[:, :1]), proposals), 1)
        layer = extractor.roi_layers[0]
        size = layer.output_size
        pooled = None
        for i in range(count):
            out = torchvision.ops.roi_align(
                feats[i],
                rois,
                size,
                spatial_scale=1.0 / extractor.featmap_strides[i],
                sampling_ratio=layer.sampling_ratio,
                aligned=layer.aligned)
            chosen = (level == i).view(-1, 1, 1, 1)
            pooled = torch.where(chosen, out, torch.zeros_like(out) if pooled is None else pooled)
        return pooled

    def detect(self, feats: Sequence[Tensor], proposals: Tensor,
               image_info: Tensor) -> Tuple[Tensor, Tensor]:
        """The RoI head's detections in the input image's pixels (mmdet's ``BBoxHead`` with
        ``multiclass_nms``)."""
        head, cfg = self.detector.roi_head.bbox_head, self.rcnn_cfg
        cls_score, bbox_pred = head(self.roi_features(feats, proposals))
        scores = cls_score.softmax(-1)[:, :-1]  # the last column is the background
        classes = scores.shape[1]
        coder = head.bbox_coder
        boxes = decode_deltas(proposals[:, None, :].expand(-1, classes, 4),
                              bbox_pred.view(-1, classes, 4), coder.means, coder.stds,
                              WH_RATIO_CLIP, image_info[:2])
        boxes = boxes / image_info[2:].repeat(2)  # (scale_x, scale_y, scale_x, scale_y)
        labels = torch.arange(classes, device=scores.device).expand_as(scores).reshape(-1)
        boxes, scores = boxes.reshape(-1, 4), scores.reshape(-1)
        valid = scores > cfg.score_thr
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        keep = batched_nms(boxes, scores, labels, cfg.nms.iou_threshold)[:cfg.max_per_img]
        return torch.cat((boxes[keep], scores[keep, None]), 1), labels[keep]


def preprocessing_metadata(cfg) -> Dict[str, str]:
    """How an image becomes the graph's inputs, from the config's test pipeline and data
    preprocessor, written into the ONNX file for :func:`preprocess` to read back."""
    resize = next((t for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'Resize'), None)
    if resize is None or not resize.get('keep_ratio', False):
        raise ValueError('whole-detector export expects a keep-ratio Resize in the test pipeline')
    pre = model_cfg(cfg).get('data_preprocessor') or {}
    return dict(
        scale=str(list(resize['scale'])),
        mean=str(list(pre.get('mean', [0, 0, 0]))),
        std=str(list(pre.get('std', [1, 1, 1]))),
        bgr_to_rgb=str(bool(pre.get('bgr_to_rgb', False))),
        size_divisor=str(pre.get('pad_size_divisor', 1)),
        pad_value=str(pre.get('pad_value', 0)),
        inputs='image: (1, 3, H, W) float32, keep-ratio resized to fit scale (bilinear), '
        '(pixel - mean) / std, zero-padded to a multiple of size_divisor; image_info: '
        '(resized height, resized width, scale_x, scale_y) float32',
        outputs='dets: (N, 5) x1, y1, x2, y2, score in the input image\'s pixels; '
        'labels: (N,) int64')


def export_detector(model: nn.Module,
                    path: str,
                    image_bgr: np.ndarray,
                    opset: int = 19,
                    metadata: Optional[Dict[str, str]] = None) -> str:
    """Export ``model`` (an mmdet two-stage detector built from ``model.cfg``, as
    :func:`mmdas.apis.init_model` gives it) whole to ``path``, traced on ``image_bgr``; height
    and width stay free. The preprocessing and the class names go into the file's metadata."""
    import onnx

    from .detection_io import preprocess
    meta = dict(preprocessing_metadata(model.cfg), **(metadata or {}))
    meta['classes'] = str(list(model.dataset_meta.get('classes', ())))
    image, info = preprocess(image_bgr, meta)
    graph = TwoStageDetectorGraph(model).eval()
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
            output_names=OUTPUT_NAMES,
            dynamic_axes=dict(
                image={
                    2: 'height',
                    3: 'width'
                }, dets={0: 'detections'}, labels={0: 'detections'}))
    proto = onnx.load(path)
    onnx.helper.set_model_props(proto, meta)
    onnx.save(proto, path)
    return path


def mmdet_detections(model: nn.Module, image_bgr: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """mmdet's own detections of ``image_bgr`` (``inference_detector``: the config's test
    pipeline and ``model.test_step``), as ``(dets (N, 5), labels (N,))``."""
    from mmdet.apis import inference_detector
    pred = inference_detector(model, image_bgr).pred_instances
    dets = np.concatenate((pred.bboxes.numpy(), pred.scores.numpy()[:, None]), 1)
    return dets.astype(np.float32), pred.labels.numpy().astype(np.int64)


def onnx_detections(session, image_bgr: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The ONNX file's detections of ``image_bgr`` in an ONNX Runtime ``session``."""
    from .detection_io import preprocess
    image, info = preprocess(image_bgr, session.get_modelmeta().custom_metadata_map)
    dets, labels = session.run(None, {'image': image, 'image_info': info})
    return dets, labels


def within_tolerance(match: Dict[str, float],
                     max_per_img: int,
                     count: int,
                     box: float,
                     score: float,
                     unmatched_score: float,
                     flips: int = 0) -> bool:
    """Whether a :func:`match_detections` result is within tolerance: matched boxes and scores
    close, and nothing unmatched that scores ``unmatched_score`` or more unless it lies at the
    ``max_per_img`` cut of a full reference (``count`` detections). ``flips`` detections per
    side may break that (pairs further apart, or unmatched ones): detections whose proposals
    near-tied in a top-k or an NMS, an order that rounding may flip."""
    cut = match['lowest_reference_score'] + score if count == max_per_img else -1.0
    apart = sum(b > box or s > score for b, s in zip(match['box_diffs'], match['score_diffs']))
    strays = [
        sum(s >= unmatched_score and s > cut for s in match[side])
        for side in ('unmatched_reference_scores', 'unmatched_candidate_scores')
    ]
    return apart + strays[0] <= flips and strays[1] <= flips


def match_detections(reference: Tuple[np.ndarray, np.ndarray],
                     candidate: Tuple[np.ndarray, np.ndarray],
                     iou_threshold: float = 0.5) -> Dict[str, float]:
    """Match two detection sets one to one: among pairs of the same class overlapping by IoU >=
    ``iou_threshold``, the closest pairs first (largest coordinate difference, then score
    difference), so that each detection finds its own counterpart before any neighbour.
    Returns the count matched, per pair and at most the box-coordinate and score differences,
    per side the count and scores left unmatched and the highest of them, and the reference's
    lowest score (detections at the ``max_per_img`` cut, where near-equal scores may fall on
    either side of it, score that)."""
    (ref_dets, ref_labels), (dets, labels) = reference, candidate
    used = np.zeros(len(dets), bool)
    ref_used = np.zeros(len(ref_dets), bool)
    pairs = []
    for i in range(len(ref_dets)):
        for j in np.flatnonzero(labels == ref_labels[i]):
            if _iou(ref_dets[i, :4], dets[j:j + 1, :4])[0] >= iou_threshold:
                pairs.append((float(np.abs(ref_dets[i, :4] - dets[j, :4]).max()),
                              float(abs(ref_dets[i, 4] - dets[j, 4])), i, int(j)))
    box_diffs, score_diffs = [], []
    for box_diff, score_diff, i, j in sorted(pairs):
        if ref_used[i] or used[j]:
            continue
        used[j] = ref_used[i] = True
        box_diffs.append(box_diff)
        score_diffs.append(score_diff)
    return dict(
        lowest_reference_score=float(ref_dets[:, 4].min(initial=1.0)),
        matched=int(used.sum()),
        max_box_diff=max(box_diffs, default=0.0),
        max_score_diff=max(score_diffs, default=0.0),
        box_diffs=box_diffs,
        score_diffs=score_diffs,
        unmatched_reference=int((~ref_used).sum()),
        unmatched_candidate=int((~used).sum()),
        unmatched_reference_scores=[float(v) for v in ref_dets[~ref_used, 4]],
        unmatched_candidate_scores=[float(v) for v in dets[~used, 4]],
        top_unmatched_score=float(
            max(np.max(ref_dets[~ref_used, 4], initial=0), np.max(dets[~used, 4], initial=0))))


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


__all__: List[str] = [
    'INPUT_NAMES', 'OUTPUT_NAMES', 'TwoStageDetectorGraph', 'batched_nms', 'decode_deltas',
    'export_detector', 'match_detections', 'within_tolerance', 'mmdet_detections',
    'onnx_detections', 'preprocessing_metadata'
]
