"""Initialising a network from published or earlier weights: one strict loader, one reader per
format.

Formats (``READERS``, detected from the file's content, read once): ``nlvideo`` (our
checkpoints), ``pytorchvideo`` (model zoo), ``slowfast`` (PySlowFast ``.pyth``), ``caffe2``
(``.pkl``: the paper's release, in its network), ``slowfast_c2`` (PySlowFast's ``Kinetics/c2``
``.pkl`` zoo in PySlowFast's network; only on request, as its files read as ``caffe2``) and
``imagenet2d`` (a torchvision 2-D ResNet, inflated to 3-D as in the paper).

Example:
    >>> weights = open_pretrained("i3d_nonlocal_8x8_IN_pretrain_400k.pkl")
    >>> model = build_model("i3d_nl5_r50", **weights.model_options)  # the file's network
    >>> report = weights.load_into(model)
"""

from __future__ import annotations

from nlvideo.models.pretrained.architecture import PretrainedArchitectureError
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
    "PretrainedArchitectureError",
    "PretrainedMismatchError",
    "apply_weights",
    "detect_format",
    "load_pretrained",
    "open_pretrained",
]
