"""Checkpoints: atomic writes, safe (weights_only) loads, RNG state capture and restore.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``; see ``FORMAT`` and the keys in ``make_checkpoint``.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nlvideo.models import build_model
from nlvideo.models.pretrained import FORMAT

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("format", "model", "model_name", "model_kwargs", "classes")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then rename.

    A failed or interrupted write leaves any previous file at ``path`` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict:
    """Load an nlvideo checkpoint safely (``weights_only=True``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file, when it is corrupt, truncated, not a torch file or not an
            nlvideo checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # zip, pickle and weights-only errors come in many types
        raise ValueError(f"{path}: checkpoint is corrupt or not a safe torch file\n{e}") from e
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: checkpoint: expected a dict, got {type(ckpt).__name__}")
    if ckpt.get("format") != FORMAT:
        raise ValueError(
            f"{path}: checkpoint: expected format {FORMAT!r}, got {ckpt.get('format')!r} "
            "(for pytorchvideo/PySlowFast/ImageNet weights use model.pretrained)"
        )
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks keys {missing}")
    return ckpt


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def build_model_from_checkpoint(
    ckpt: dict, *, device: str | torch.device = "cpu", source: str = "checkpoint"
) -> nn.Module:
    """Rebuild the network a checkpoint was trained with and load its weights (eval mode).

    Raises:
        ValueError: naming ``source`` when the weights do not fit the named model.
    """
    model = build_model(ckpt["model_name"], **ckpt["model_kwargs"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise ValueError(f"{source}: weights do not fit {ckpt['model_name']}\n{e}") from e
    return model.to(device).eval()


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and python ``random`` states, as weights_only-safe values."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [py_version, list(py_internal), py_gauss],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng_state``."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
