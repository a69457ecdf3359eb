"""Where a model looks: DAS gate maps and Grad-CAM for mmpretrain classifiers and mmdet
two-stage detectors.

Grad-CAM is pytorch-grad-cam's (``GradCAM``, one per target layer, so each layer's map is its
own, min-max scaled to [0, 1]). For a classifier it explains a class logit; for a detector, the
class score of its top-scoring detection: the RoI head's classification of that box, as a
function of the image.

Every map :func:`explain` returns lives in one frame: the image the model saw without its
padding (``PreparedImage.rgb``; a detector's data preprocessor pads the batch to
``pad_size_divisor``), cropped by :func:`to_image_frame`, the one place that rule is written.
"""
import copy
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from torch import Tensor

from mmdas.apis import ClassifierOutput
from mmdas.models.backbones import named_gates


@dataclass
class PreparedImage:
    """An image as the model takes it and as it is drawn."""
    path: str
    inputs: Tensor  # (1, 3, H, W), normalised by the model's data preprocessor
    data_sample: Any
    rgb: np.ndarray  # (h, w, 3) uint8, the image after the test pipeline, unpadded


def to_image_frame(amap: np.ndarray, image: PreparedImage, rescale: bool) -> np.ndarray:
    """``amap``, a map over the model's (padded) input canvas at any resolution (a Grad-CAM at
    the input's size, a gate map at its stage's), cropped to the part that covers the image
    without padding, the frame of ``image.rgb`` (padding is added at the bottom and right).
    ``rescale`` min-max scales the crop to [0, 1] again (Grad-CAM scales over the whole
    canvas, padding included)."""
    (h, w), (H, W) = image.rgb.shape[:2], image.inputs.shape[-2:]
    rows = max(1, round(amap.shape[0] * h / H))
    cols = max(1, round(amap.shape[1] * w / W))
    crop = amap[:rows, :cols]
    if not rescale:
        return crop
    low, high = float(crop.min()), float(crop.max())
    return (crop - low) / (high - low) if high > low else np.zeros_like(crop)


def prepare_image(cfg: Config, model: nn.Module, path: str) -> PreparedImage:
    """Load ``path`` through the config's test pipeline and the model's data preprocessor."""
    from mmengine.dataset import Compose
    pipeline = [
        t for t in copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
        if t['type'] not in ('LoadAnnotations', 'mmdet.LoadAnnotations')
    ]
    data = Compose(pipeline)(dict(img_path=path, img_id=0))
    if data is None:
        raise ValueError(f'the test pipeline returned nothing for {path!r}')
    chw = data['inputs']
    batch = model.data_preprocessor(dict(inputs=[chw], data_samples=[data['data_samples']]), False)
    return PreparedImage(path, batch['inputs'], batch['data_samples'][0],
                         chw.permute(1, 2, 0).numpy()[..., ::-1].copy())


def stage_end_layers(model: nn.Module, count: int = 2) -> List[str]:
    """The last ``count`` stages of the backbone (ResNet family: ``layer3``, ``layer4``;
    MobileNetV2: its stride-16 and stride-32 layers), by name."""
    backbone = model.backbone
    if hasattr(backbone, 'res_layers'):
        stages = list(backbone.res_layers)
    elif hasattr(backbone, 'layers'):  # MobileNetV2: the last layer of each resolution level
        stages = [backbone.layers[i] for i in (1, 2, 4, 6)]
    else:
        raise ValueError(f'no default target layers for {type(backbone).__name__}: pass '
                         '--target-layers')
    return [f'backbone.{name}' for name in stages[-count:]]


def resolve_layers(model: nn.Module, names: Sequence[str]) -> List[nn.Module]:
    """The modules called ``names``; a missing one is named with the layers that exist."""
    modules = dict(model.named_modules())
    missing = [name for name in names if name not in modules]
    if missing:
        shallow = [n for n in modules if n and n.count('.') <= 1]
        raise ValueError(f'target layer(s) {missing} not in the model; layers: {shallow}')
    return [modules[name] for name in names]


def gate_maps(model: nn.Module, inputs: Tensor) -> List[Tuple[str, np.ndarray]]:
    """The attention map ``A`` of each of the model's gates that exposes one (``attention(x)``,
    as ``DASGate`` does), averaged over channels: ``(name, H_s x W_s)``."""
    inputs_seen: Dict[str, Tensor] = {}
    gates = [(name, m) for name, m in named_gates(model) if hasattr(m, 'attention')]
    hooks = [
        m.register_forward_hook(
            lambda module, args, out, name=name: inputs_seen.__setitem__(name, args[0]))
        for name, m in gates
    ]
    try:
        with torch.no_grad():
            _forward(model, inputs)
            return [(name, gate.attention(inputs_seen[name]).mean(1)[0].numpy())
                    for name, gate in gates]
    finally:
        for hook in hooks:
            hook.remove()


def _forward(model: nn.Module, inputs: Tensor):
    return model.extract_feat(inputs) if hasattr(model, 'extract_feat') else model(inputs)


class BoxClassScores(nn.Module):
    """A two-stage mmdet detector's RoI-head class scores for one fixed box (input coords)."""

    def __init__(self, detector: nn.Module, box: Tensor) -> None:
        super().__init__()
        if not hasattr(detector, 'roi_head'):
            raise ValueError(f'Grad-CAM of a detection needs a two-stage detector with an RoI '
                             f'head (Faster R-CNN family), got {type(detector).__name__}')
        self.detector = detector
        self.register_buffer('rois', torch.cat([box.new_zeros(1, 1), box.view(1, 4)], 1))

    def forward(self, inputs: Tensor) -> Tensor:
        feats = self.detector.extract_feat(inputs)
        return self.detector.roi_head._bbox_forward(feats, self.rois)['cls_score']


@dataclass
class Explanation:
    """What one model sees in one image."""
    label: int
    score: float
    box: Optional[np.ndarray]  # the detection's box (x1, y1, x2, y2) in input pixels
    cams: Dict[str, np.ndarray]  # target layer -> h x w Grad-CAM in [0, 1], image frame
    gates: List[Tuple[str, np.ndarray]]  # gate name -> its map in the image frame


def explain(model: nn.Module,
            image: PreparedImage,
            target_layers: Sequence[str],
            label: Optional[int] = None) -> Explanation:
    """Grad-CAM at each target layer for ``label`` (default: the predicted class, or for a
    detector the top-scoring detection) and the DAS gate maps, all in the image's frame
    (:func:`to_image_frame`)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    layers = resolve_layers(model, target_layers)
    box = None
    if hasattr(model, 'roi_head'):  # a detector: explain its top detection
        with torch.no_grad():
            pred = model.predict(image.inputs, [image.data_sample], rescale=False)[0]
        instances = pred.pred_instances
        if len(instances) == 0:
            raise ValueError(f'{image.path}: the detector found nothing to explain')
        top = int(instances.scores.argmax())
        box = instances.bboxes[top].detach()
        label = int(instances.labels[top]) if label is None else label
        score = float(instances.scores[top])
        target_model = BoxClassScores(model, box)
    else:
        target_model = ClassifierOutput(model)
        with torch.no_grad():
            probs = target_model(image.inputs).softmax(-1)[0]
        label = int(probs.argmax()) if label is None else label
        score = float(probs[label])
    cams = {}
    for name, layer in zip(target_layers, layers):
        cam = GradCAM(model=target_model, target_layers=[layer])
        try:
            cams[name] = to_image_frame(
                cam(image.inputs, targets=[ClassifierOutputTarget(label)])[0], image, True)
        finally:
            cam.activations_and_grads.release()
    gates = [(name, to_image_frame(amap, image, False))
             for name, amap in gate_maps(model, image.inputs)]
    return Explanation(label, score, None if box is None else box.numpy(), cams, gates)
