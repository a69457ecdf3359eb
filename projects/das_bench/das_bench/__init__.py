"""The experiment bench, not installed with mmdas: the synthetic-shapes demos (``make demo``,
``make demo-cls``, ``make tune-cls``), the comparison of attention modules (``make compare``)
and the benchmarks (``make bench``)."""
from .shapes import (CLS_CONFIGS, CLS_LR_GRID, DET_CONFIGS, HARD_CLS, PRETRAIN_CONFIG, DetectionRun,
                     DetectionSchedule, LrSearch, Stages, ensure_shapes_data, evaluate,
                     from_pretrained, lr_work_dir, mean_sd, paired_differences, say_done, search_lr,
                     train_and_test, train_and_test_detectors, vanilla_start)

__all__ = [
    'CLS_CONFIGS', 'CLS_LR_GRID', 'DET_CONFIGS', 'HARD_CLS', 'PRETRAIN_CONFIG', 'DetectionRun',
    'DetectionSchedule', 'LrSearch', 'Stages', 'ensure_shapes_data', 'evaluate', 'from_pretrained',
    'lr_work_dir', 'mean_sd', 'paired_differences', 'say_done', 'search_lr', 'train_and_test',
    'train_and_test_detectors', 'vanilla_start'
]
