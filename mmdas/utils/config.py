"""A config's model as mmengine's Runner builds it."""
import copy

from mmengine.config import Config, ConfigDict


def runner_model_cfg(cfg: Config) -> ConfigDict:
    """``cfg.model`` with the top-level ``data_preprocessor`` merged in, as mmengine's Runner
    does (mmpretrain's configs keep their normalisation there): a model built from
    ``cfg.model`` alone would take unnormalised images."""
    model = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    return model
