"""Export a network to ONNX or a ``torch.export`` program (.pt2), checked before it is kept.

Both formats start from one ``torch.export`` graph of the eval-mode network with a dynamic batch
axis, traced in ``export_mode`` (Non-local blocks on their exact, trace-friendly path). ONNX is
``torch.onnx.export`` of that program (the dynamo exporter: the TorchScript one is deprecated).
The file is written beside its destination, run on a fresh clip (onnxruntime on the CPU, or
``torch.export.load(path).module()``), compared with the eager network, and only then renamed
into place; a difference above ``tolerance`` times the logits' scale is an error.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nlvideo.models.hooks import export_mode

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "pt2")
INPUT_NAME, OUTPUT_NAME = "clips", "logits"
METADATA_FILE = "nlvideo.json"  # extra file of a .pt2 holding the same metadata as ONNX's
MAX_BATCH = 1024


class ExportMismatch(RuntimeError):
    """The exported file's logits differ from the network's by more than the tolerance."""


@dataclass
class ExportReport:
    """What the check of an exported file measured."""

    path: Path
    format: str
    max_diff: float  # largest |exported - eager| over the check clip's logits
    scale: float  # largest |eager logit|
    explicit_blocks: list[str]  # concatenate Non-local blocks exported with their L x M affinity


def export_model(
    model: nn.Module,
    path: str | Path,
    *,
    fmt: str,
    frames: int,
    size: int,
    metadata: Mapping[str, str] | None = None,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> ExportReport:
    """Export ``model`` for ``(N, 3, frames, size, size)`` clips, any N; check it; keep it.

    Args:
        model: The network; put in eval mode (and left there).
        path: Destination file.
        fmt: "onnx" or "pt2".
        frames: Clip length T of the input.
        size: Crop side of the input.
        metadata: String pairs stored in the file (ONNX ``metadata_props``; a JSON extra file
            ``nlvideo.json`` in a .pt2).
        tolerance: Largest allowed max |difference| of the logits, relative to their scale.
        seed: Seed of the random example and check clips.

    Raises:
        ValueError: unknown format.
        ExportMismatch: the exported file disagrees with the network (nothing is written).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {FORMATS}")
    path = Path(path)
    model = model.eval()
    g = torch.Generator().manual_seed(seed)
    example = torch.randn(2, 3, frames, size, size, generator=g)
    check = torch.randn(3, 3, frames, size, size, generator=g)  # another batch size: dynamic
    with export_mode(model) as explicit:
        if explicit:
            logger.warning(
                "concatenate Non-local blocks %s are exported through their explicit L x M "
                "affinity (sort / searchsorted have no ONNX form): exact, but memory grows as "
                "L x M",
                explicit,
            )
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        with torch.no_grad():
            program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")  # .pt2 wants its suffix
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if fmt == "onnx":
            _save_onnx(program, tmp, metadata or {})
            got = run_onnx(tmp, check)
        else:
            extra = {METADATA_FILE: json.dumps(dict(metadata or {}))}
            torch.export.save(program, tmp, extra_files=extra)
            with torch.no_grad():
                got = torch.export.load(tmp).module()(check).numpy()
        with torch.no_grad():
            expected = model(check).float().numpy()
        max_diff = float(np.abs(got - expected).max())
        scale = float(np.abs(expected).max())
        if not max_diff <= tolerance * max(scale, 1e-12):
            raise ExportMismatch(
                f"{path}: the exported {fmt} logits differ from PyTorch's by up to {max_diff:.3g} "
                f"(scale {scale:.3g}, allowed {tolerance:g} of it); nothing written"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportReport(path, fmt, max_diff, scale, explicit)


def _save_onnx(program: torch.export.ExportedProgram, path: Path, metadata: Mapping[str, str]):
    import onnx

    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
        torch.onnx.export(
            program,
            f=str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            external_data=False,
            dynamo=True,
        )
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, dict(metadata))
    onnx.save(proto, str(path))


def onnx_session(path: str | Path):
    """An onnxruntime CPU session of ``path``."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(path: str | Path, clips: torch.Tensor) -> np.ndarray:
    """Logits of an ONNX file for float clips ``(N, 3, T, H, W)``."""
    session = onnx_session(path)
    return session.run(None, {session.get_inputs()[0].name: clips.float().numpy()})[0]
