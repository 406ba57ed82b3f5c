"""Initialising a network from published or earlier weights: one strict loader, one reader per
format.

Formats (``READERS``, detected from the file's content, read once): ``nlvideo`` (our
checkpoints), ``pytorchvideo`` (model zoo), ``slowfast`` (PySlowFast ``.pyth``), ``caffe2``
(the paper's ``.pkl`` release and PySlowFast's ``Kinetics/c2`` zoo) and ``imagenet2d`` (a
torchvision 2-D ResNet, inflated to 3-D as in the paper).

Example:
    >>> report = load_pretrained(build_model("i3d_nl5_r50", nl_pool_first=True,
    ...                                      nl_scale_logits=True), "I3D_NLN_8x8_R50.pkl")
"""

from __future__ import annotations

from nlvideo.models.pretrained.loader import (
    READERS,
    LoadReport,
    Pretrained,
    PretrainedMismatchError,
    apply_weights,
    detect_format,
    load_pretrained,
    open_pretrained,
)
from nlvideo.models.pretrained.nlvideo_ckpt import FORMAT

__all__ = [
    "FORMAT",
    "READERS",
    "LoadReport",
    "Pretrained",
    "PretrainedMismatchError",
    "apply_weights",
    "detect_format",
    "load_pretrained",
    "open_pretrained",
]
