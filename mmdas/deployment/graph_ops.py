"""mmdet's test-time arithmetic in operators the TorchScript exporter maps to the standard ONNX
domain: box decoding (``DeltaXYWHBBoxCoder``, ``DistancePointBBoxCoder``), a dynamic top-k,
mmdet's class-wise NMS, score filtering before a top-k, and the RoI extractor's level
assignment. The whole-detector graphs (:mod:`mmdas.deployment.detector`) are built from these.
"""
import math
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torchvision
from torch import Tensor

#: ``DeltaXYWHBBoxCoder.decode``'s default, which mmdet's heads do not override.
WH_RATIO_CLIP = 16 / 1000

#: The prefix of a probed tensor's name in an exported file.
PROBE_PREFIX = 'probe:'


class _Probe(torch.autograd.Function):
    """The identity, written as a node ``mmdas::Probe`` with the tensor's name: it marks a tensor
    of the exported graph (:func:`probe`)."""

    @staticmethod
    def forward(ctx, x: Tensor, name: str) -> Tensor:
        return x.clone()

    @staticmethod
    def symbolic(g, x, name: str):
        return g.op('mmdas::Probe', x, name_s=name)


def probe(x: Tensor, name: str) -> Tensor:
    """``x``, marked ``name`` in an exported graph (nothing while not exporting);
    :func:`name_probes` turns each mark into an ``Identity`` node whose output is named
    ``probe:<name>``, so that a check can read it (:mod:`mmdas.deployment.parity`)."""
    return _Probe.apply(x, name) if torch.onnx.is_in_onnx_export() else x


def name_probes(proto) -> List[str]:
    """Rewrite each ``mmdas::Probe`` node of an exported ONNX model (in place) as a standard
    ``Identity`` whose output is ``probe:<name>``; returns the names."""
    renamed = {}
    for node in proto.graph.node:
        if node.domain == 'mmdas' and node.op_type == 'Probe':
            name = PROBE_PREFIX + next(a.s.decode() for a in node.attribute if a.name == 'name')
            renamed[node.output[0]] = name
            node.op_type, node.domain, node.output[0] = 'Identity', '', name
            del node.attribute[:]
    for node in proto.graph.node:
        node.input[:] = [renamed.get(value, value) for value in node.input]
    for value in list(proto.graph.output) + list(proto.graph.value_info):
        value.name = renamed.get(value.name, value.name)
    imports = [o for o in proto.opset_import if o.domain != 'mmdas']
    del proto.opset_import[:]
    proto.opset_import.extend(imports)
    return [name[len(PROBE_PREFIX):] for name in renamed.values()]


def topk_count(values: Tensor, k: int) -> Tensor:
    """``min(k, len(values))``, kept dynamic under tracing (ONNX's TopK needs K <= the size)."""
    if not torch.jit.is_tracing():
        return torch.tensor(min(k, values.shape[0]))
    size = torch._shape_as_tensor(values)[:1]
    return torch.min(torch.cat((torch.tensor([k], dtype=size.dtype), size)))


def clip_boxes(x1: Tensor, y1: Tensor, x2: Tensor, y2: Tensor, img_hw: Tensor) -> Tensor:
    """``(..., 4)`` boxes with every coordinate clamped to ``[0, w]`` or ``[0, h]``."""
    h, w = img_hw[0], img_hw[1]
    return torch.stack(
        (torch.min(x1.clamp(min=0), w), torch.min(y1.clamp(min=0), h), torch.min(
            x2.clamp(min=0), w), torch.min(y2.clamp(min=0), h)), -1)


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
    return clip_boxes(top_left[..., 0], top_left[..., 1], bottom_right[..., 0],
                      bottom_right[..., 1], img_hw)


def decode_distances(points: Tensor, distances: Tensor, img_hw: Tensor) -> Tensor:
    """mmdet's ``distance2bbox`` (``DistancePointBBoxCoder.decode``, ``clip_border=True``):
    ``points`` ``(..., 2)`` and their distances to the left, top, right and bottom edges."""
    return clip_boxes(points[..., 0] - distances[..., 0], points[..., 1] - distances[..., 1],
                      points[..., 0] + distances[..., 2], points[..., 1] + distances[..., 3],
                      img_hw)


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """Indices kept by NMS within each group, by decreasing score: mmdet's ``batched_nms``
    (boxes of different groups offset apart by the largest coordinate + 1, one NMS)."""
    largest = torch.cat((boxes.reshape(-1), boxes.new_zeros(1))).max()  # 0 when no boxes
    offsets = groups.to(boxes) * (largest + 1)
    return torchvision.ops.nms(boxes + offsets[:, None], scores, iou_threshold)


def filter_scores_and_topk(scores: Tensor, score_thr: float,
                           topk: int) -> Tuple[Tensor, Tensor, Tensor]:
    """mmdet's ``filter_scores_and_topk`` for ``scores`` ``(priors, classes)``: the scores above
    ``score_thr``, the highest ``topk`` of them over (prior, class) pairs; returns those scores,
    their priors' indices and their classes."""
    classes = scores.shape[1]
    flat = scores.reshape(-1)
    valid = torch.nonzero(flat > score_thr).squeeze(1)
    top, order = flat[valid].topk(topk_count(valid, topk))
    chosen = valid[order]
    return top, torch.div(chosen, classes, rounding_mode='floor'), chosen % classes


def roi_features(extractor: nn.Module, feats: Sequence[Tensor], boxes: Tensor) -> Tensor:
    """mmdet's ``SingleRoIExtractor`` on ``boxes`` ``(N, 4)`` of one image: each box's level
    ``floor(log2(sqrt(area) / finest_scale + 1e-6))``, clamped, and ``RoiAlign`` of every
    level's map, each box taking its own level's (mmcv's ``RoIAlign`` with ``aligned=True`` and
    adaptive sampling, ``sampling_ratio=0``)."""
    count = extractor.num_inputs
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    level = torch.floor(torch.log2(torch.sqrt(area) / extractor.finest_scale + 1e-6))
    level = level.clamp(min=0, max=count - 1)
    rois = torch.cat((torch.zeros_like(boxes[:, :1]), boxes), 1)
    layer = extractor.roi_layers[0]
    pooled = None
    for i in range(count):
        out = torchvision.ops.roi_align(
            feats[i],
            rois,
            layer.output_size,
            spatial_scale=1.0 / extractor.featmap_strides[i],
            sampling_ratio=layer.sampling_ratio,
            aligned=layer.aligned)
        chosen = (level == i).view(-1, 1, 1, 1)
        pooled = torch.where(chosen, out, torch.zeros_like(out) if pooled is None else pooled)
    return pooled


__all__ = [
    'WH_RATIO_CLIP', 'batched_nms', 'clip_boxes', 'decode_deltas', 'decode_distances',
    'PROBE_PREFIX', 'filter_scores_and_topk', 'name_probes', 'probe', 'roi_features', 'topk_count'
]
