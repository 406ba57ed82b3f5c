"""Models: Non-local blocks, C2D/I3D ResNets, ``build_model`` by name, pretrained weights.

Example:
    >>> from nlvideo.models import build_model
    >>> model = build_model("i3d_nl5_r50", num_classes=400)
"""

from __future__ import annotations

from nlvideo.models.entrypoints import MODELS, build_model
from nlvideo.models.non_local import NLBlockND
from nlvideo.models.resnet3d import VideoResNet, create_video_resnet

__all__ = ["MODELS", "NLBlockND", "VideoResNet", "build_model", "create_video_resnet"]
