"""Initialising a network from published or earlier weights: format detection and loading.

Formats: ``nlvideo`` (our checkpoints), ``pytorchvideo``, ``slowfast`` (PySlowFast ``.pyth``)
and ``imagenet2d`` (a torchvision 2-D ResNet, inflated to 3-D as in the paper).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from nlvideo.models.convert import (
    inflate_resnet2d,
    load_pytorchvideo_checkpoint,
    load_slowfast_checkpoint,
)

logger = logging.getLogger(__name__)

FORMAT = "nlvideo/1"  # the "format" entry of every nlvideo checkpoint


def detect_pretrained_format(state: dict) -> str:
    """Guess where a weights file comes from: nlvideo, imagenet2d, slowfast or pytorchvideo."""
    if state.get("format") == FORMAT:
        return "nlvideo"
    for key in ("model_state", "state_dict", "model"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    keys = [k for k in state if isinstance(k, str)]
    if "conv1.weight" in keys and any(k.startswith("layer1.") for k in keys):
        return "imagenet2d"
    if any(k.startswith(("s1.", "s2.", "head.projection")) for k in keys):
        return "slowfast"
    return "pytorchvideo"


def load_pretrained(model: nn.Module, path: str | Path, fmt: str = "auto") -> None:
    """Initialise ``model`` from a weights file before training.

    Args:
        model: freshly built network.
        path: an nlvideo checkpoint, a pytorchvideo or PySlowFast checkpoint, or a torchvision
            2-D ImageNet ResNet state dict (inflated to 3-D, the paper's initialisation).
        fmt: "auto" (guess from the keys) or one of nlvideo | pytorchvideo | slowfast | imagenet2d.

    Raises:
        ValueError: naming the file when it cannot be read or does not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            f"model.pretrained: {path} is corrupt or not a safe torch file: {e}"
        ) from e
    if not isinstance(state, dict):
        raise ValueError(f"model.pretrained: {path} holds a {type(state).__name__}, not a dict")
    fmt = detect_pretrained_format(state) if fmt == "auto" else fmt
    logger.info("initialising from %s (%s)", path, fmt)
    if fmt == "imagenet2d":
        inflate_resnet2d(model, path)
    elif fmt == "slowfast":
        load_slowfast_checkpoint(model, path)
    elif fmt == "pytorchvideo":
        load_pytorchvideo_checkpoint(model, path)
    elif fmt == "nlvideo":
        weights = state["model"]
        own = model.state_dict()
        # A different class count (fine-tuning): keep the new head, load everything else.
        head = [k for k in weights if k in own and weights[k].shape != own[k].shape]
        if head:
            logger.info("model.pretrained: not loading %s (shape differs: new classifier)", head)
        try:
            model.load_state_dict(
                {k: v for k, v in weights.items() if k not in head}, strict=not head
            )
        except RuntimeError as e:
            raise ValueError(f"model.pretrained: {path} does not fit the model: {e}") from e
    else:
        raise ValueError(f"model.pretrained_format: unknown format {fmt!r}")
