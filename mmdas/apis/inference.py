"""Models from configs: the one way mmdas builds a model from a config and a checkpoint, as
``mmdet.apis.init_detector`` reads; used by the analysis and deployment tools and FLOP counts."""
import copy
from typing import List, Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.registry import MODELS, init_default_scope
from torch import Tensor

from mmdas.models.backbones import plain_backbone_cfg
from mmdas.models.backbones.pretrained import is_pretrained_cfg
from mmdas.utils import load_model_checkpoint

#: The frameworks whose configs :func:`init_model` builds (a config's ``default_scope``).
SCOPES = ('mmdet', 'mmpretrain')


def model_cfg(cfg: Config) -> ConfigDict:
    """``cfg.model`` with the top-level ``data_preprocessor`` merged in, as mmengine's Runner
    does (mmpretrain's configs keep their normalisation there): a model built from
    ``cfg.model`` alone would take unnormalised images."""
    model = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    return model


def drop_pretrained(cfg, where: str = 'model') -> List[str]:
    """Set every ``init_cfg=dict(type='Pretrained', ...)`` under ``cfg`` to None, in place;
    return ``'<where>: <checkpoint>'`` for each (nothing is downloaded)."""
    dropped: List[str] = []
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            if key == 'init_cfg' and is_pretrained_cfg(value):
                dropped.append(f"{where}: {value.get('checkpoint')}")
                cfg[key] = None
            else:
                dropped += drop_pretrained(value, f'{where}.{key}')
    elif isinstance(cfg, (list, tuple)):
        for i, value in enumerate(cfg):
            dropped += drop_pretrained(value, f'{where}.{i}')
    return dropped


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None,
               plain_backbone: bool = False) -> nn.Module:
    """The config's model in eval mode on ``device``, as the Runner builds it.

    With ``checkpoint``, every tensor comes from it (a checkpoint that does not fit raises,
    naming the keys). Without, the weights are the config's ``init_weights`` with its
    ``Pretrained`` entries skipped (never downloaded here). ``plain_backbone`` swaps a gated
    backbone for its plain twin (:func:`mmdas.models.backbones.plain_backbone_cfg`). The model
    carries ``cfg``, ``dataset_meta`` (the test set's, as mmdet's ``init_detector`` sets it),
    ``weights`` (where its weights come from, in words) and ``skipped_pretrained``
    (``'<where>: <checkpoint>'`` per skipped entry).
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope', 'mmdet')
    if scope not in SCOPES:
        raise ValueError(f'init_model builds configs of {SCOPES} (default_scope), got {scope!r}')
    init_default_scope(scope)
    built = model_cfg(cfg)
    if plain_backbone:
        built.backbone = plain_backbone_cfg(built.backbone)
    skipped = drop_pretrained(built)
    model = MODELS.build(built)
    if checkpoint is not None:
        load_model_checkpoint(model, checkpoint)
        model.weights, model.skipped_pretrained = f'the checkpoint {checkpoint}', []
    else:
        model.init_weights()
        model.weights = "the config's init_weights (no checkpoint)"
        model.skipped_pretrained = skipped
    model.cfg = cfg
    model.dataset_meta = test_dataset_meta(cfg)
    return model.to(device).eval()


def test_dataset_meta(cfg: Config) -> dict:
    """The test set's meta information (its ``classes``...): the config's ``metainfo``, else
    the dataset class's own ``METAINFO`` (mmdet's ``CocoDataset`` keeps the 80 names there)."""
    from mmengine.registry import DATASETS
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    if dataset.get('metainfo'):
        return dict(dataset.metainfo)
    dataset_class = DATASETS.get(dataset['type']) if 'type' in dataset else None
    return dict(getattr(dataset_class, 'METAINFO', {}))


class ClassifierOutput(nn.Module):
    """An mmpretrain classifier from its normalised input to its class logits, or with
    ``probabilities`` to their softmax (what a deployed classifier returns)."""

    def __init__(self, classifier: nn.Module, probabilities: bool = False) -> None:
        super().__init__()
        self.classifier, self.probabilities = classifier, probabilities

    def forward(self, inputs: Tensor) -> Tensor:
        logits = self.classifier(inputs, mode='tensor')
        return torch.softmax(logits, dim=1) if self.probabilities else logits


def unscaled_det_sample(height: int, width: int):
    """An mmdet ``DetDataSample`` whose metainfo says: an ``height x width`` image, neither
    resized nor padded, batched alone at that size (what a detector's forward reads)."""
    from mmdet.structures import DetDataSample
    shape = (height, width)
    return DetDataSample(
        metainfo=dict(
            img_shape=shape,
            pad_shape=shape,
            ori_shape=shape,
            scale_factor=(1.0, 1.0),
            batch_input_shape=shape))
