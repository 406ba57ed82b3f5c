"""What the built-in data set tests share: decoding a clip, digesting a set, a recipe smoke run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np


def decode_rgb(path: Path) -> np.ndarray:
    """Every frame of ``path`` as uint8 RGB (T, H, W, 3), decoded by PyAV."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def tree_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` by relative path (the lock file excepted)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# Two training steps on 16 / 8 generated clips, on the CPU, in the main process.
SMALL_RUN = (
    "synthetic.num_train=16",
    "synthetic.num_val=8",
    "train.iterations=2",
    "train.batch_size=8",
    "train.eval_batch_size=8",
    "train.device=cpu",
    "train.progress=false",
    "data.num_workers=0",
)


def smoke_run(recipe: Path, tmp_path: Path, *extra: str) -> dict:
    """Two training steps of ``recipe`` on 16 / 8 generated clips, then its evaluation report.

    The run's folder is ``tmp_path / "run"``; ``extra`` overrides come last.
    """
    from nlvideo.config import load_config
    from nlvideo.pipeline import run_training

    overrides = [
        f"synthetic.root={tmp_path / 'data'}",
        *SMALL_RUN,
        f"train.output_dir={tmp_path / 'run'}",
        *extra,
    ]
    return run_training(load_config(recipe, overrides))
