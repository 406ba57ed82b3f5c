"""What an exported file carries to its consumer, and inference on ONNX files.

The metadata (ONNX ``metadata_props``, string values, JSON-encoded) is everything the
``Predictor`` of the checkpoint uses: class names, clip sampling (frames, stride, frame rate,
clips, decode size, reader) and test views (crop, scale, crops, mean / std), plus the model name.
``onnx_predictor`` rebuilds that Predictor around an onnxruntime session, so
``nlvideo-infer --model FILE.onnx`` sees a video exactly as with the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nlvideo.data.transforms import TestTransform
from nlvideo.engine.predictor import Predictor
from nlvideo.export.program import onnx_session

# Predictor attributes stored as they are; the transform's are stored under their own keys.
_CLIP_KEYS = ("num_frames", "stride", "target_fps", "num_clips", "short_side", "backend")
_VIEW_KEYS = {"crop_size": "crop_size", "test_scale": "scale", "num_crops": "num_crops"}
METADATA_KEYS = ("model_name", "classes", *_CLIP_KEYS, *_VIEW_KEYS, "mean", "std")


def predictor_metadata(predictor: Predictor, model_name: str) -> dict[str, str]:
    """The metadata of a file exported from ``predictor``'s network (JSON string values)."""
    t = predictor.transform
    values: dict[str, Any] = {"model_name": model_name, "classes": predictor.classes}
    values |= {key: getattr(predictor, key) for key in _CLIP_KEYS}
    values |= {key: getattr(t, attr) for key, attr in _VIEW_KEYS.items()}
    values |= {"mean": list(t.mean), "std": list(t.std)}
    return {key: json.dumps(value) for key, value in values.items()}


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The nlvideo metadata of an ONNX file, decoded.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an ONNX file, or one without (all of) nlvideo's metadata.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf decode errors come in several types
        raise ValueError(f"model {path} is not an ONNX file: {e}") from e
    props = {p.key: p.value for p in proto.metadata_props}
    missing = [key for key in METADATA_KEYS if key not in props]
    if missing:
        raise ValueError(
            f"model {path}: no nlvideo metadata {missing} (export it with nlvideo-export)"
        )
    return {key: json.loads(props[key]) for key in METADATA_KEYS}


class OnnxModel(nn.Module):
    """An ONNX file run by onnxruntime on the CPU, called like the network it came from."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = str(path)
        self.session = onnx_session(path)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(clips.detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run(None, {self.input_name: x})[0])


def onnx_predictor(
    path: str | Path,
    *,
    num_clips: int | None = None,
    num_crops: int | None = None,
    backend: str | None = None,
) -> Predictor:
    """A CPU Predictor over an exported ONNX file, with the checkpoint's test-time sampling.

    Args:
        path: ONNX file written by ``nlvideo-export``.
        num_clips: Temporal clips per video instead of the stored number.
        num_crops: Spatial crops per clip (1 or 3) instead of the stored number.
        backend: Video reader instead of the stored one.

    Raises:
        FileNotFoundError, ValueError: naming the file.
    """
    meta = read_metadata(path)
    transform = TestTransform(
        crop_size=meta["crop_size"],
        scale=meta["test_scale"],
        num_crops=num_crops or meta["num_crops"],
        mean=meta["mean"],
        std=meta["std"],
    )
    clip = {key: meta[key] for key in _CLIP_KEYS}
    clip |= {k: v for k, v in (("num_clips", num_clips), ("backend", backend)) if v is not None}
    return Predictor(OnnxModel(path), meta["classes"], transform=transform, device="cpu", **clip)
