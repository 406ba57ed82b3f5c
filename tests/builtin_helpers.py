"""What the built-in data set tests share: decoding a written clip, digesting a generated set."""

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
