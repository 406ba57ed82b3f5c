"""Deployable files of a trained network: ONNX and ``torch.export`` (.pt2), checked at export.

Example:
    >>> report = export_model(model, "net.onnx", fmt="onnx", frames=8, size=224)
    >>> report.max_diff  # max |logit difference| with PyTorch, checked < 1e-4 of their scale
"""

from __future__ import annotations

from nlvideo.export.program import FORMATS, ExportMismatch, ExportReport, export_model
from nlvideo.export.runtime import OnnxModel, onnx_predictor, predictor_metadata, read_metadata

__all__ = [
    "FORMATS",
    "ExportMismatch",
    "ExportReport",
    "OnnxModel",
    "export_model",
    "onnx_predictor",
    "predictor_metadata",
    "read_metadata",
]
