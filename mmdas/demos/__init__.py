"""The synthetic-shapes demos (``make demo``, ``make demo-cls``, the comparison's trained
sections): configs, training, evaluation and summaries."""
from .shapes import (CLS_CONFIGS, DET_CONFIGS, DetectionRun, DetectionSchedule, Stages,
                     ensure_shapes_data, evaluate, mean_sd, say_done, shapes_cfg, train_and_test,
                     train_and_test_detectors)

__all__ = [
    'CLS_CONFIGS', 'DET_CONFIGS', 'DetectionRun', 'DetectionSchedule', 'Stages',
    'ensure_shapes_data', 'evaluate', 'mean_sd', 'say_done', 'shapes_cfg', 'train_and_test',
    'train_and_test_detectors'
]
