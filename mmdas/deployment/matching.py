"""Two detection sets matched one to one (an exported detector's against mmdet's own): the
differences of matched boxes, scores and masks, and what is left unmatched on either side."""
from typing import Dict, Sequence

import numpy as np

#: ``(dets (N, 5), labels (N,))``, or with ``masks (N, H, W)`` bool in the image's pixels.
Detections = Sequence[np.ndarray]


def match_detections(reference: Detections,
                     candidate: Detections,
                     iou_threshold: float = 0.5) -> Dict[str, float]:
    """Match two detection sets one to one: among pairs of the same class overlapping by IoU >=
    ``iou_threshold``, the closest pairs first (largest coordinate difference, then score
    difference), so that each detection finds its own counterpart before any neighbour.
    Returns the count matched, the pairs ``(reference index, candidate index)``, per pair and at
    most the box-coordinate and score differences,
    per side the count and scores left unmatched and the highest of them, and the reference's
    lowest score (detections at the ``max_per_img`` cut, where near-equal scores may fall on
    either side of it, score that). With masks on both sides, also each pair's mask IoU and the
    lowest of them."""
    (ref_dets, ref_labels), (dets, labels) = reference[:2], candidate[:2]
    masks = (reference[2], candidate[2]) if len(reference) > 2 and len(candidate) > 2 else None
    used = np.zeros(len(dets), bool)
    ref_used = np.zeros(len(ref_dets), bool)
    pairs = []
    for i in range(len(ref_dets)):
        for j in np.flatnonzero(labels == ref_labels[i]):
            if iou_matrix(ref_dets[i:i + 1, :4], dets[j:j + 1, :4])[0, 0] >= iou_threshold:
                pairs.append((float(np.abs(ref_dets[i, :4] - dets[j, :4]).max()),
                              float(abs(ref_dets[i, 4] - dets[j, 4])), i, int(j)))
    box_diffs, score_diffs, mask_ious, matched = [], [], [], []
    for box_diff, score_diff, i, j in sorted(pairs):
        if ref_used[i] or used[j]:
            continue
        used[j] = ref_used[i] = True
        matched.append((i, j))
        box_diffs.append(box_diff)
        score_diffs.append(score_diff)
        if masks is not None:
            mask_ious.append(mask_iou(masks[0][i], masks[1][j]))
    extra = {} if masks is None else dict(
        mask_ious=mask_ious, min_mask_iou=min(mask_ious, default=1.0))
    return dict(
        lowest_reference_score=float(ref_dets[:, 4].min(initial=1.0)),
        matched=int(used.sum()),
        pairs=matched,
        max_box_diff=max(box_diffs, default=0.0),
        max_score_diff=max(score_diffs, default=0.0),
        box_diffs=box_diffs,
        score_diffs=score_diffs,
        unmatched_reference=int((~ref_used).sum()),
        unmatched_candidate=int((~used).sum()),
        unmatched_reference_scores=[float(v) for v in ref_dets[~ref_used, 4]],
        unmatched_candidate_scores=[float(v) for v in dets[~used, 4]],
        top_unmatched_score=float(
            max(np.max(ref_dets[~ref_used, 4], initial=0), np.max(dets[~used, 4], initial=0))),
        **extra)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` IoU of two lists of ``(x1, y1, x2, y2)`` boxes, in float64 (the
    precision in which a tie at an NMS threshold is judged)."""
    a, b = np.asarray(a, np.float64)[:, None, :4], np.asarray(b, np.float64)[None, :, :4]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return w * h / np.maximum(area_a + area_b - w * h, 1e-9)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks of one image (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


__all__ = ['Detections', 'iou_matrix', 'mask_iou', 'match_detections']
