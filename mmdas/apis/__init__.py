from .inference import (SCOPES, ClassifierOutput, drop_pretrained, init_model, model_cfg,
                        unscaled_det_sample)

__all__ = [
    'SCOPES', 'ClassifierOutput', 'drop_pretrained', 'init_model', 'model_cfg',
    'unscaled_det_sample'
]
