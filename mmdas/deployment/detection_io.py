"""The whole-detector ONNX file's inputs and outputs in NumPy and OpenCV only (no torch, no
OpenMMLab; ``tools/deployment/onnx_infer.py`` loads this file by its path, without importing
mmdas): what mmdet's test pipeline and data preprocessor do to an image, as the file's metadata
records them, and drawing the detections.

mmdet's ``Resize(keep_ratio=True)`` is ``mmcv.imrescale``: the factor that fits the image in
``scale`` (long edge <= max(scale), short edge <= min(scale)), the new size rounded half up,
bilinear (OpenCV); its ``scale_factor`` is the new width / height over the old. The data
preprocessor then converts BGR to RGB, normalises and pads (bottom, right) to a multiple of
``size_divisor`` with ``pad_value``.
"""
import ast
from typing import Dict, Sequence, Tuple

import cv2
import numpy as np


def preprocess(image_bgr: np.ndarray, meta: Dict[str, str]) -> Tuple[np.ndarray, np.ndarray]:
    """``(image, image_info)`` for the graph from an ``H x W x 3`` uint8 BGR image."""
    scale = ast.literal_eval(meta['scale'])
    h, w = image_bgr.shape[:2]
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    new_w, new_h = int(w * factor + 0.5), int(h * factor + 0.5)
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if meta['bgr_to_rgb'] == 'True':
        resized = resized[..., ::-1]
    mean = np.array(ast.literal_eval(meta['mean']), np.float32)
    std = np.array(ast.literal_eval(meta['std']), np.float32)
    normalised = (resized.astype(np.float32) - mean) / std
    divisor = int(meta['size_divisor'])
    pad_h, pad_w = -new_h % divisor, -new_w % divisor
    padded = np.pad(
        normalised, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=float(meta['pad_value']))
    image = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], np.float32)
    info = np.array([new_h, new_w, new_w / w, new_h / h], np.float32)
    return image, info


def draw(image_bgr: np.ndarray,
         dets: np.ndarray,
         labels: np.ndarray,
         classes: Sequence[str],
         score_thr: float = 0.3) -> np.ndarray:
    """The image with the detections scoring at least ``score_thr`` drawn on a copy."""
    out = image_bgr.copy()
    for (x1, y1, x2, y2, score), label in zip(dets, labels):
        if score < score_thr:
            continue
        colour = tuple(int(c) for c in np.random.default_rng(int(label)).integers(60, 255, 3))
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), colour, 2)
        name = classes[label] if label < len(classes) else str(label)
        cv2.putText(out, f'{name} {score:.2f}', (int(x1), max(int(y1) - 3, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return out
