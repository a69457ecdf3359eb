"""Two detection sets matched one to one (an exported detector's against mmdet's own)."""
from typing import List, Tuple

import numpy as np

#: ``(boxes (N, 4), scores (N,), labels (N,))``
Boxes = Tuple[np.ndarray, np.ndarray, np.ndarray]
#: Boxes whose every coordinate lies this close are candidates for a pair whatever their IoU: a
#: box clipped flat at the border has no area (RTMDet keeps those above ``min_bbox_size=0``).
FLAT_BOX_PX = 0.5


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` IoU of two lists of ``(x1, y1, x2, y2)`` boxes, in float64 (the
    precision in which a tie at an NMS threshold is judged)."""
    a, b = np.asarray(a, np.float64)[:, None, :4], np.asarray(b, np.float64)[None, :, :4]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return w * h / np.maximum(area_a + area_b - w * h, 1e-9)


def match_detections(reference: Boxes,
                     candidate: Boxes,
                     iou_threshold: float = 0.5) -> List[Tuple[int, int, float, float]]:
    """Match two detection sets one to one: among pairs of the same class overlapping by IoU >=
    ``iou_threshold`` (or, for boxes of no area, whose IoU is 0, with every coordinate within
    ``FLAT_BOX_PX``), the closest pairs first (largest coordinate difference, then score
    difference), so that each detection finds its own counterpart before any neighbour.
    Returns ``(reference index, candidate index, box difference, score difference)`` per pair.
    """
    (ref_boxes, ref_scores, ref_labels), (boxes, scores, labels) = reference, candidate
    near = np.abs(ref_boxes[:, None, :4] - boxes[None, :, :4]).max(-1, initial=0) <= FLAT_BOX_PX
    same = (ref_labels[:, None] == labels[None, :]) & \
        ((iou_matrix(ref_boxes, boxes) >= iou_threshold) | near)
    rows, columns = np.nonzero(same)
    box_diffs = np.abs(ref_boxes[rows, :4] - boxes[columns, :4]).max(-1, initial=0)
    score_diffs = np.abs(ref_scores[rows] - scores[columns])
    pairs, used = [], (set(), set())
    for k in np.lexsort((score_diffs, box_diffs)):
        i, j = int(rows[k]), int(columns[k])
        if i not in used[0] and j not in used[1]:
            used[0].add(i)
            used[1].add(j)
            pairs.append((i, j, float(box_diffs[k]), float(score_diffs[k])))
    return pairs


__all__ = ['Boxes', 'iou_matrix', 'match_detections']
