"""Whether a whole-detector ONNX file computes what mmdet's own ``test_step`` computes.

A detector is a smooth function up to its candidates (the dense heads' outputs, the RoI head's
outputs for given RoIs) and discrete after them (top-k, NMS, score thresholds, the binarised
masks). Two correct runtimes agree on the smooth part to rounding, and the discrete part
amplifies that rounding only where a tie decides it. So the check is, per image:

1. **Candidates, with tolerances.** The tensors the export marks (``probe`` in
   :mod:`mmdas.deployment.graph_ops`): the RPN's or dense head's outputs at every level, before
   any top-k; for a two-stage detector the RoIs, class logits (averaged over Cascade's stages)
   and deltas of the last box head, row by row for the proposals both runtimes share (the
   same candidates). Each within ``rtol`` of the tensor's largest magnitude plus ``atol``.
2. **Proposals and detections, exactly except for ties.** Matched one to one (same class, IoU
   >= 0.5, closest pairs first); every pair within ``box`` pixels and ``score``. A detection
   without a close counterpart passes only where a tie decides it, and the report names each:
   its class score within ``score`` of the score threshold or of a per-level ``nms_pre`` cut
   (before FCOS's centerness); its score within ``score`` of the other runtime's lowest where
   that one is full (the ``max_per_img`` cut); a width or height within ``box`` of a dense
   head's ``min_bbox_size`` (a box clipped flat at the border) where the other runtime has no
   box of its class; an overlap within ``iou`` of the NMS threshold with a detection scoring
   as much; a detection the other runtime kept or suppressed through such a tie; or (the
   second stage) a detection overlapping a proposal that only its own runtime found.
3. **Masks as probabilities.** Each matched pair's ``M x M`` probabilities within ``mask``;
   pasted pixels may differ only where ``mask_thr_binary`` lies between mmdet's and the file's
   pasted probabilities (each pasted with its own box), widened by ``mask``.

The reference's candidates are read from mmdet's own path (``inference_detector``) by recording
the arguments and results of its heads' ``predict_by_feat``.
"""
import contextlib
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from .graph_ops import PROBE_PREFIX
from .matching import Boxes, iou_matrix, match_detections


@dataclass
class Tolerance:
    """What two correct runtimes may differ by (see the module's docstring). float32 rounding
    through a detector is ~1e-6 of a tensor's scale when it is well conditioned, but a
    backbone with barely-trained normalisation can amplify it: the tests' ResNeXt-101 at 128 px
    differs from its own float64 run by up to 3.4e-4 in PyTorch alone. ``rtol`` and ``score``
    leave room for that."""
    rtol: float = 1e-3
    atol: float = 1e-5
    box: float = 0.05
    score: float = 1e-3
    iou: float = 1e-3
    mask: float = 1e-3


@dataclass
class Report:
    """One image's comparison: a line per stage, the ties it allowed (named), the failures."""
    lines: List[str] = field(default_factory=list)
    ties: List[str] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)
    matched: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


@contextlib.contextmanager
def recording(obj: object, method: str) -> Iterator[List[tuple]]:
    """Record ``(args, kwargs, result)`` of every call of ``obj.method`` inside the block."""
    calls: List[tuple] = []
    original = getattr(obj, method)

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    setattr(obj, method, wrapper)
    try:
        yield calls
    finally:
        delattr(obj, method)


def _numpy(t) -> np.ndarray:
    return t.detach().cpu().float().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def graph_family(model: nn.Module) -> str:
    """``'two_stage'`` or ``'dense'``."""
    from .detector import TWO_STAGE_DETECTORS, detector_graph
    detector_graph(model)  # refuses a family the export does not write, by name
    return 'two_stage' if type(model).__name__ in TWO_STAGE_DETECTORS else 'dense'


def mmdet_reference(model: nn.Module, image_bgr: np.ndarray) -> Dict[str, object]:
    """mmdet's own detections of ``image_bgr`` (``inference_detector``) and the candidates its
    heads turned into them: probed names as the export gives them, and the RPN's proposals,
    the second stage's RoIs and (Mask R-CNN) each detection's mask logits."""
    from mmdet.apis import inference_detector
    heads = []
    if graph_family(model) == 'two_stage':
        roi_head = model.roi_head
        box_head = roi_head.bbox_head[-1] if isinstance(roi_head.bbox_head,
                                                        nn.ModuleList) else roi_head.bbox_head
        heads = [('rpn', model.rpn_head), ('rcnn', box_head)]
        if getattr(roi_head, 'with_mask', False):
            heads.append(('mask', roi_head.mask_head))
    else:
        heads = [('dense', model.bbox_head)]
    with contextlib.ExitStack() as stack:
        calls = {
            name: stack.enter_context(recording(head, 'predict_by_feat'))
            for name, head in heads
        }
        result = inference_detector(model, image_bgr)
    pred = result.pred_instances
    out: Dict[str, object] = dict(
        boxes=_numpy(pred.bboxes),
        scores=_numpy(pred.scores),
        labels=_numpy(pred.labels).astype(np.int64),
        masks=_numpy(pred.masks).astype(bool) if 'masks' in pred else None,
        scale=np.array(result.metainfo['scale_factor'], np.float32))
    if 'dense' in calls:
        args, kwargs, _ = calls['dense'][0]
        outs = list(args) + [kwargs.get('score_factors')]
        for name, levels in zip(('cls', 'reg', 'centerness'), outs):
            for i, level in enumerate(levels or ()):
                out[f'{name}.{i}'] = _numpy(level)
        return out
    args, kwargs, proposals = calls['rpn'][0]
    for name, levels in zip(('rpn_cls', 'rpn_reg'), args):
        for i, level in enumerate(levels):
            out[f'{name}.{i}'] = _numpy(level)
    out['proposals'] = np.concatenate(
        (_numpy(proposals[0].bboxes), _numpy(proposals[0].scores)[:, None]), 1)
    _, kwargs, _ = calls['rcnn'][0]
    out['rois'] = _numpy(kwargs['rois'][0])[:, 1:]
    out['roi_cls'] = _numpy(kwargs['cls_scores'][0])
    out['roi_reg'] = _numpy(kwargs['bbox_preds'][0])
    if 'mask' in calls and calls['mask']:
        _, kwargs, _ = calls['mask'][0]
        logits = _numpy(kwargs['mask_preds'][0])
        channel = out['labels'] if logits.shape[1] > 1 else np.zeros_like(out['labels'])
        out['mask_probs'] = 1 / (1 + np.exp(-logits[np.arange(len(logits)), channel]))
    return out


def probed_session(path: str):
    """An ONNX Runtime session of the file at ``path`` whose outputs also include every probed
    tensor (the file itself is not changed)."""
    import onnx
    import onnxruntime
    proto = onnx.load(path)
    outputs = {o.name for o in proto.graph.output}
    for node in proto.graph.node:
        for name in node.output:
            if name.startswith(PROBE_PREFIX) and name not in outputs:
                proto.graph.output.append(onnx.ValueInfoProto(name=name))
    return onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=['CPUExecutionProvider'])


def onnx_outputs(session, image_bgr: np.ndarray) -> Dict[str, np.ndarray]:
    """The file's outputs by name (``probe:`` dropped from probed ones) for ``image_bgr``, the
    masks pasted into the image as ``pasted`` (bool) beside their probabilities ``masks``."""
    from .onnx_infer import paste_masks, preprocess
    meta = session.get_modelmeta().custom_metadata_map
    image, info = preprocess(image_bgr, meta)
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {'image': image, 'image_info': info})
    out = {name.replace(PROBE_PREFIX, '', 1): value for name, value in zip(names, values)}
    if 'masks' in out:
        h, w = image_bgr.shape[:2]
        out['pasted'] = paste_masks(out['masks'], out['dets'], h, w, float(meta['mask_thr_binary']))
    return out


def _compare_tensors(title: str, names: Sequence[str], reference: Dict, got: Dict, tol: Tolerance,
                     report: Report) -> None:
    """The tensors ``names`` of both sides, each within ``rtol`` of its scale + ``atol``
    (:func:`~.onnx.compare_outputs`)."""
    from .onnx import compare_outputs
    present = []
    for name in names:
        if name not in got:
            report.failures.append(f'{name}: the file has no such probe (export it again)')
        elif reference[name].shape != got[name].shape:
            report.failures.append(f'{name}: shape {got[name].shape} in ONNX Runtime, '
                                   f'{reference[name].shape} in mmdet')
        else:
            present.append(name)
    checks = compare_outputs([reference[n] for n in present], [got[n] for n in present], present,
                             tol.rtol, tol.atol)
    for check in checks:
        if not check.ok:
            report.failures.append(f'{check.name}: max |onnx - mmdet| = {check.max_abs_diff:.3g} '
                                   f'> {check.allowed:.3g} ({tol.rtol:g} of its scale + '
                                   f'{tol.atol:g})')
    # the allowance is rtol x (scale + atol / rtol): the difference relative to that scale
    worst = max((c.max_abs_diff * tol.rtol / c.allowed for c in checks), default=0.0)
    report.lines.append(f'{title}: largest difference {worst:.1e} of scale')


def level_cuts(levels: Sequence[np.ndarray], nms_pre: int, score_thr: float) -> List[float]:
    """The score at each level's ``nms_pre`` cut (levels with more candidates than that): the
    ``nms_pre``-th highest sigmoid score above ``score_thr`` of the level's logits."""
    cuts = []
    for logits in levels:
        scores = 1 / (1 + np.exp(-logits.reshape(-1).astype(np.float64)))
        scores = scores[scores > score_thr]
        if len(scores) > nms_pre:
            cuts.append(float(np.partition(scores, -nms_pre)[-nms_pre]))
    return cuts


def _has_box(side: Boxes, box: np.ndarray, label: int, within: float) -> bool:
    """Whether ``side`` has a detection of class ``label`` within ``within`` px of ``box``."""
    boxes, _, labels = side
    same = boxes[labels == label]
    return bool(len(same)) and bool((np.abs(same - box).max(-1) <= within).any())


def _tie_reasons(sides: Dict[str, Boxes],
                 loose: List[Tuple[str, int]],
                 tol: Tolerance,
                 iou_thr: float,
                 max_per_img: Optional[int],
                 score_thr: Optional[float],
                 cuts: Sequence[float],
                 class_scores: Dict[str, np.ndarray],
                 sources: Dict[str, np.ndarray],
                 min_size: Optional[float] = None) -> Dict[Tuple[str, int], str]:
    """Why each of the ``loose`` detections ``(side, index)`` may lack a counterpart, for those
    a tie decides (the module's docstring)."""
    everything = [(side, k) for side, (boxes, _, _) in sides.items() for k in range(len(boxes))]
    index = {item: n for n, item in enumerate(everything)}
    boxes, scores, labels = (np.concatenate([part[n] for part in sides.values()]) for n in range(3))
    ious = iou_matrix(boxes, boxes)

    def rivals(item):
        """The detections of the same class, on either side, that score as much as ``item``."""
        n = index[item]
        for m in np.flatnonzero((labels == labels[n]) & (scores >= scores[n] - tol.score)):
            if m != n:
                yield everything[m], float(ious[n, m])

    def lowest_if_full(side):
        kept = sides[side][1]
        return float(kept.min()) if max_per_img is not None and len(kept) >= max_per_img \
            else None

    why = {}
    for item in loose:
        side, k = item
        other = 'onnx' if side == 'mmdet' else 'mmdet'
        score, class_score = float(scores[index[item]]), float(class_scores[side][k])
        box = boxes[index[item]]
        cut = lowest_if_full(other)
        at_nms = [(o, iou) for o, iou in rivals(item) if abs(iou - iou_thr) <= tol.iou]
        if score_thr is not None and abs(class_score - score_thr) <= tol.score:
            why[item] = f'class score at the score threshold {score_thr:g}'
        elif any(abs(class_score - c) <= tol.score for c in cuts):
            why[item] = "class score at a level's nms_pre cut"
        elif cut is not None and score <= cut + tol.score:
            why[item] = f'score at the max_per_img={max_per_img} cut of {other} ({cut:.6g})'
        elif min_size is not None and min(box[2:] - box[:2]) <= min_size + tol.box and \
                not _has_box(sides[other], box, labels[index[item]], tol.box):
            why[item] = f'width or height at min_bbox_size={min_size:g}, none of its class ' \
                f'there in {other}'
        elif at_nms:
            (o, m), iou = at_nms[0]
            why[item] = f'IoU {iou:.6f} with {o} #{m} at the NMS threshold {iou_thr:g}'
        elif len(sources[side]) and iou_matrix(boxes[index[item]][None],
                                               sources[side]).max() >= 0.5:
            why[item] = f'overlaps a proposal that only {side} found'
    grew = True
    while grew:  # what an allowed difference let the other runtime keep or suppress
        grew = False
        for item in loose:
            causes = [
                o for o, iou in rivals(item)
                if o in why and o[0] != item[0] and iou > iou_thr - tol.iou
            ]
            if item not in why and causes:
                why[item] = f'kept or suppressed by {causes[0][0]} #{causes[0][1]}, itself a tie'
                grew = True
    return why


def compare_sets(kind: str,
                 reference: Boxes,
                 candidate: Boxes,
                 tol: Tolerance,
                 report: Report,
                 iou_thr: float,
                 max_per_img: Optional[int] = None,
                 score_thr: Optional[float] = None,
                 cuts: Sequence[float] = (),
                 class_scores: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                 sources: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                 min_size: Optional[float] = None) -> List[Tuple[int, int]]:
    """Compare mmdet's detections (``reference``) with the file's (``candidate``): matched one
    to one, each pair within ``tol``; every other detection must be decided by a tie (the
    module's docstring), named in ``report.ties``, or it is a failure. ``cuts``: the per-level
    ``nms_pre`` cut scores; ``class_scores``: per side, the score each detection had at the
    threshold and the cuts (default: its score); ``sources``: per side, the proposals only that
    side found (boxes (N, 4)); ``min_size``: a dense head's ``min_bbox_size``. Returns the close
    pairs ``(reference index, candidate index)``."""
    sides = dict(mmdet=reference, onnx=candidate)
    close, worst = [], [0.0, 0.0]
    for i, j, box, score in match_detections(reference, candidate):
        if box <= tol.box and score <= tol.score:
            close.append((i, j))
            worst = [max(worst[0], box), max(worst[1], score)]
    paired = dict(mmdet={i for i, _ in close}, onnx={j for _, j in close})
    loose = [(side, k) for side, (boxes, _, _) in sides.items() for k in range(len(boxes))
             if k not in paired[side]]
    class_scores = dict(zip(sides, class_scores or (reference[1], candidate[1])))
    sources = dict(zip(sides, sources or (np.zeros((0, 4)), np.zeros((0, 4)))))
    why = _tie_reasons(sides, loose, tol, iou_thr, max_per_img, score_thr, cuts, class_scores,
                       sources, min_size)
    for side, k in loose:
        boxes, scores, labels = sides[side]
        box = ', '.join(f'{v:.2f}' for v in boxes[k])
        name = f'{kind} {side} #{k} (label {labels[k]}, score {scores[k]:.6g}, box [{box}])'
        if (side, k) in why:
            report.ties.append(f'{name}: {why[side, k]}')
        else:
            report.failures.append(f'{name} has no counterpart within {tol.box:g} px and score '
                                   f'{tol.score:g}, and no tie decides it')
    report.lines.append(f'{kind}: {len(close)} of {len(reference[0])} (mmdet) / '
                        f'{len(candidate[0])} (onnx) matched, box diff {worst[0]:.1e} px, score '
                        f'diff {worst[1]:.1e}; {len(why)} tied')
    return close


def compare_rows(reference: Dict, got: Dict, pairs: List[Tuple[int, int]], tol: Tolerance,
                 report: Report) -> None:
    """The last box head's RoIs, logits and deltas for the proposals both runtimes share (the
    same candidates: the rows follow the proposals)."""
    names = ('rois', 'roi_cls', 'roi_reg')
    if len(reference['rois']) != len(reference['proposals']) or \
            len(got['rois']) != len(got['proposals']):
        report.failures.append('RoIs: not one per proposal')
        return
    rows = [i for i, _ in pairs], [j for _, j in pairs]
    _compare_tensors(f'box head on the same {len(pairs)} proposals (RoIs, logits, deltas)', names,
                     {name: reference[name][rows[0]]
                      for name in names}, {name: got[name][rows[1]]
                                           for name in names}, tol, report)


def compare_masks(reference: Dict, got: Dict, pairs: List[Tuple[int, int]], tol: Tolerance,
                  report: Report, threshold: float) -> None:
    """Each pair's mask probabilities, then the file's pasted masks (as the deployment pastes
    them, with the file's threshold) against mmdet's: a pixel may differ only where
    ``threshold`` lies between mmdet's and the file's pasted probabilities (each with its own
    box), widened by ``tol.mask``."""
    from .onnx_infer import paste_mask
    worst, at_threshold = 0.0, 0
    h, w = reference['masks'].shape[1:]
    for i, j in pairs:
        diff = float(np.abs(reference['mask_probs'][i] - got['masks'][j]).max())
        worst = max(worst, diff)
        if diff > tol.mask:
            report.failures.append(f'mask of mmdet #{i}: probabilities differ by {diff:.3g} > '
                                   f'{tol.mask:g}')
        pasted = np.zeros((2, h, w), np.float32)
        for n, (probs, box) in enumerate(((reference['mask_probs'][i], reference['boxes'][i]),
                                          (got['masks'][j], got['dets'][j]))):
            window, values = paste_mask(probs, box, h, w)
            pasted[n][window] = values
        near = (pasted.min(0) - tol.mask <= threshold) & (threshold <= pasted.max(0) + tol.mask)
        differ = reference['masks'][i] != got['pasted'][j]
        if (differ & ~near).any():
            report.failures.append(f'mask of mmdet #{i}: {int((differ & ~near).sum())} pixels '
                                   f'differ away from the threshold {threshold:g}')
        if (differ & near).any():
            at_threshold += int((differ & near).sum())
            report.ties.append(f'mask of mmdet #{i}: {int((differ & near).sum())} pixel(s) '
                               f'at the threshold {threshold:g}')
    report.lines.append(f'masks: {len(pairs)} compared as probabilities, largest difference '
                        f'{worst:.1e}; {at_threshold} pasted pixel(s) at the threshold')


def _detections(reference: Dict, got: Dict) -> Tuple[Boxes, Boxes]:
    dets = got['dets']
    return ((reference['boxes'], reference['scores'], reference['labels']),
            (dets[:, :4], dets[:, 4], got['labels']))


def _class_scores(detections: Boxes, candidates: np.ndarray, tol: Tolerance) -> np.ndarray:
    """Each detection's class score (before FCOS's centerness): that of the file's candidate
    ``(x1, y1, x2, y2, class score, label)`` of its class closest to its box, within
    ``tol.box`` (else its own score)."""
    boxes, scores, labels = detections
    found = scores.astype(np.float64)
    for k in range(len(boxes)):
        same = np.flatnonzero(candidates[:, 5] == labels[k])
        if len(same):
            diffs = np.abs(candidates[same, :4] - boxes[k]).max(-1)
            if diffs.min() <= tol.box:
                found[k] = candidates[same[diffs.argmin()], 4]
    return found


def _compare_dense(model: nn.Module, reference: Dict, got: Dict, tol: Tolerance,
                   report: Report) -> List[Tuple[int, int]]:
    """RetinaNet, FCOS and RTMDet: the head's outputs, then the detections."""
    head = model.bbox_head
    cfg = head.test_cfg
    names = sorted(k for k in reference if k.split('.')[0] in ('cls', 'reg', 'centerness'))
    _compare_tensors(f'candidates ({len(names)} tensors before any top-k)', names, reference, got,
                     tol, report)
    levels = [reference[f'cls.{i}'] for i in range(head.prior_generator.num_levels)]
    score_thr = cfg.get('score_thr', 0)
    cuts = level_cuts(levels, cfg.nms_pre, score_thr) if head.use_sigmoid_cls else []
    detections = _detections(reference, got)
    class_scores = tuple(_class_scores(d, got['candidates'], tol) for d in detections)
    min_size = cfg.get('min_bbox_size', -1)
    return compare_sets('detections', *detections, tol, report, cfg.nms.iou_threshold,
                        cfg.max_per_img, score_thr, cuts, class_scores, None,
                        min_size if min_size >= 0 else None)


def _compare_two_stage(model: nn.Module, reference: Dict, got: Dict, tol: Tolerance,
                       report: Report) -> List[Tuple[int, int]]:
    """Faster, Mask and Cascade R-CNN: the RPN's outputs, its proposals, the box head on the
    proposals both share, the detections and (Mask R-CNN) the masks."""
    rpn, rcnn = model.test_cfg.rpn, model.test_cfg.rcnn
    levels = model.rpn_head.prior_generator.num_levels
    names = [f'rpn_{n}.{i}' for n in ('cls', 'reg') for i in range(levels)]
    _compare_tensors(f'candidates ({len(names)} tensors before any top-k)', names, reference, got,
                     tol, report)
    cuts = level_cuts([reference[f'rpn_cls.{i}'] for i in range(levels)], rpn.nms_pre,
                      -1.0) if model.rpn_head.use_sigmoid_cls else []
    proposals = reference['proposals'], got['proposals']
    sets = [(p[:, :4], p[:, 4], np.zeros(len(p), np.int64)) for p in proposals]
    close = compare_sets('proposals', *sets, tol, report, rpn.nms.iou_threshold, rpn.max_per_img,
                         None, cuts)
    compare_rows(reference, got, close, tol, report)
    scale = np.tile(reference['scale'], 2)  # proposals are in the resized image's pixels
    only = tuple(
        np.delete(p[:, :4], [pair[n] for pair in close], 0) / scale
        for n, p in enumerate(proposals))
    pairs = compare_sets('detections', *_detections(reference, got), tol, report,
                         rcnn.nms.iou_threshold, rcnn.max_per_img, rcnn.score_thr, (), None, only)
    if 'masks' in got:
        compare_masks(reference, got, pairs, tol, report, float(rcnn.mask_thr_binary))
    return pairs


def compare_with_mmdet(model: nn.Module,
                       session,
                       image_bgr: np.ndarray,
                       tol: Optional[Tolerance] = None) -> Report:
    """The check of the module's docstring for one image: mmdet's ``model`` against the file
    in ``session`` (:func:`probed_session`)."""
    report = Report()
    compare = _compare_dense if graph_family(model) == 'dense' else _compare_two_stage
    pairs = compare(model, mmdet_reference(model, image_bgr), onnx_outputs(session, image_bgr), tol
                    or Tolerance(), report)
    report.matched = len(pairs)
    return report


__all__ = [
    'PROBE_PREFIX', 'Report', 'Tolerance', 'compare_masks', 'compare_rows', 'compare_sets',
    'compare_with_mmdet', 'level_cuts', 'mmdet_reference', 'onnx_outputs', 'probed_session',
    'recording'
]
