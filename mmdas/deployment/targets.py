"""What gets exported from an OpenMMLab config: a classifier whole, a detector's backbone and
neck (the two-stage heads need mmdeploy's rewriters, see README "Deployment")."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from torch import Tensor

from mmdas.models.backbones.pretrained import is_pretrained_cfg
from mmdas.utils import load_model_checkpoint, runner_model_cfg

SUPPORTED_SCOPES = ('mmpretrain', 'mmdet')


class ClassifierScores(nn.Module):
    """An mmpretrain classifier from its normalised input to class probabilities."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, inputs: Tensor) -> Tensor:
        return F.softmax(self.classifier(inputs, mode='tensor'), dim=1)


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


def _drop_pretrained(cfg: Any, where: str = 'model') -> List[str]:
    """Set every ``init_cfg=dict(type='Pretrained', ...)`` under ``cfg`` to None, in place;
    return ``'<where>: <checkpoint>'`` for each."""
    dropped: List[str] = []
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            if key == 'init_cfg' and is_pretrained_cfg(value):
                dropped.append(f"{where}: {value.get('checkpoint')}")
                cfg[key] = None
            else:
                dropped += _drop_pretrained(value, f'{where}.{key}')
    elif isinstance(cfg, (list, tuple)):
        for i, value in enumerate(cfg):
            dropped += _drop_pretrained(value, f'{where}.{i}')
    return dropped


def _preprocessing(cfg: Config) -> Dict[str, str]:
    """What the data preprocessor does before the exported graph (it is not part of it)."""
    pre = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    to_rgb = pre.get('bgr_to_rgb', pre.get('to_rgb', False))
    return dict(
        mean=str(list(pre.get('mean', []))),
        std=str(list(pre.get('std', []))),
        channel_order='RGB (convert BGR images)' if to_rgb else 'as loaded (BGR)',
        layout='NCHW float32, (pixel - mean) / std')


def build_export_target(cfg: Config, checkpoint: Optional[str] = None) -> ExportTarget:
    """The part of the config's model that is exported, with the checkpoint's weights."""
    scope = cfg.get('default_scope', 'mmdet')
    if scope not in SUPPORTED_SCOPES:
        raise ValueError(f"export supports configs of {SUPPORTED_SCOPES} (default_scope), got "
                         f"{scope!r}; a backbone alone can be exported with "
                         'mmdas.deployment.export_onnx')
    init_default_scope(scope)
    model_cfg = runner_model_cfg(cfg)
    skipped = _drop_pretrained(model_cfg)  # never downloaded here
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        load_model_checkpoint(model, checkpoint)
        weights, skipped = f'the checkpoint {checkpoint}', []
    else:
        model.init_weights()
        weights = "the config's init_weights (no checkpoint)"
    model.eval()
    if scope == 'mmpretrain':
        module, names, shape = ClassifierScores(model).eval(), ['scores'], (224, 224)
    else:
        module, shape = DetectorFeatures(model).eval(), (800, 1344)
        with torch.no_grad():
            names = [f'feat{i}' for i in range(len(module(torch.zeros(1, 3, 64, 64))))]
    return ExportTarget(module, names, shape, _preprocessing(cfg), weights, skipped)
