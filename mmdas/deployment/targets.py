"""What gets exported from an OpenMMLab config: a classifier whole, a detector's backbone and
neck (the two-stage heads need mmdeploy's rewriters, see README "Deployment")."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from torch import Tensor

from mmdas.apis import ClassifierOutput, init_model, model_cfg


class DetectorFeatures(nn.Module):
    """An mmdet detector's backbone and neck: its normalised input to the neck's feature maps."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.backbone = detector.backbone
        self.neck = detector.neck if getattr(detector, 'with_neck', False) else None

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        feats = self.backbone(inputs)
        return tuple(self.neck(feats) if self.neck is not None else feats)


@dataclass
class ExportTarget:
    """A module ready for export, its outputs' names and how to prepare its input.

    ``weights`` says where the weights come from: the checkpoint, or (without one) the config's
    ``init_weights`` with its ``Pretrained`` entries skipped (listed in ``skipped_pretrained``
    as ``'<where>: <checkpoint>'``; nothing is downloaded)."""
    module: nn.Module
    output_names: List[str]
    default_shape: Tuple[int, int]
    preprocessing: Dict[str, str] = field(default_factory=dict)
    weights: str = ''
    skipped_pretrained: List[str] = field(default_factory=list)


def _preprocessing(cfg: Config) -> Dict[str, str]:
    """What the data preprocessor does before the exported graph (it is not part of it)."""
    pre = model_cfg(cfg).get('data_preprocessor') or {}
    to_rgb = pre.get('bgr_to_rgb', pre.get('to_rgb', False))
    return dict(
        mean=str(list(pre.get('mean', []))),
        std=str(list(pre.get('std', []))),
        channel_order='RGB (convert BGR images)' if to_rgb else 'as loaded (BGR)',
        layout='NCHW float32, (pixel - mean) / std')


def build_export_target(cfg: Config, checkpoint: Optional[str] = None) -> ExportTarget:
    """The part of the config's model that is exported, with the checkpoint's weights (or,
    without one, the config's ``init_weights``; see :func:`mmdas.apis.init_model`)."""
    model = init_model(cfg, checkpoint)
    if cfg.get('default_scope', 'mmdet') == 'mmpretrain':
        module, names, shape = ClassifierOutput(model, probabilities=True), ['scores'], (224, 224)
    else:
        module, shape = DetectorFeatures(model).eval(), (800, 1344)
        with torch.no_grad():
            names = [f'feat{i}' for i in range(len(module(torch.zeros(1, 3, 64, 64))))]
    return ExportTarget(module.eval(), names, shape, _preprocessing(cfg), model.weights,
                        model.skipped_pretrained)
