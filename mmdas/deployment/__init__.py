"""Deployment: ONNX export with standard operators, checked in ONNX Runtime."""
from .onnx import (ATOL, EXPORTERS, RTOL, OutputCheck, compare_outputs, export_onnx,
                   nonstandard_operators, onnxruntime_outputs, operator_types)
from .targets import DetectorFeatures, ExportTarget, build_export_target

__all__ = [
    'ATOL', 'EXPORTERS', 'RTOL', 'OutputCheck', 'compare_outputs', 'export_onnx',
    'nonstandard_operators', 'onnxruntime_outputs', 'operator_types', 'DetectorFeatures',
    'ExportTarget', 'build_export_target'
]
