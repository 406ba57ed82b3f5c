"""Models: Non-local blocks, C2D/I3D ResNets, and ``build_model`` by name.

Example:
    >>> from nlvideo.models import build_model
    >>> model = build_model("i3d_nl5_r50", num_classes=400)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from nlvideo.models.non_local import NLBlockND
from nlvideo.models.resnet3d import (
    MODELS,
    OVERRIDE_DEFAULTS,
    VideoResNet,
    c2d_nl5_r50,
    c2d_nl5_r101,
    c2d_r50,
    c2d_r101,
    c2d_tiny,
    create_video_resnet,
    i3d_nl1_r50,
    i3d_nl5_r50,
    i3d_nl5_r101,
    i3d_nl10_r50,
    i3d_nl10_r101,
    i3d_nl_tiny,
    i3d_r50,
    i3d_r101,
    i3d_tiny,
)

MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def list_models() -> list[str]:
    """Names accepted by ``build_model``."""
    return list(MODEL_NAMES)


def build_model(name: str, num_classes: int = 400, **overrides: Any) -> nn.Module:
    """Builds a named network with fresh weights.

    Args:
        name: one of ``MODEL_NAMES`` (e.g. "i3d_nl5_r50").
        num_classes: size of the logits.
        **overrides: optional ``dropout``, ``nl_mode``, ``nl_locations`` (4 per-stage index
            lists, replacing the preset), ``nl_pool_first``, ``nl_scale_logits``,
            ``nl_sub_sample``, ``zero_init_final_bn``.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or a bad override value.
        TypeError: unknown override key.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    return MODELS[name](num_classes, **overrides)


__all__ = [
    "MODELS",
    "MODEL_NAMES",
    "OVERRIDE_DEFAULTS",
    "NLBlockND",
    "VideoResNet",
    "build_model",
    "c2d_nl5_r50",
    "c2d_nl5_r101",
    "c2d_r50",
    "c2d_r101",
    "c2d_tiny",
    "create_video_resnet",
    "i3d_nl1_r50",
    "i3d_nl5_r50",
    "i3d_nl5_r101",
    "i3d_nl10_r50",
    "i3d_nl10_r101",
    "i3d_nl_tiny",
    "i3d_r50",
    "i3d_r101",
    "i3d_tiny",
    "list_models",
]
