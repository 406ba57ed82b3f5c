"""Decoded PyAV frame -> displayed uint8 RGB array, through one swscale context per thread.

Building a swscale context costs ~3 ms (measured on 64x64 H.264: 3.0 ms for a fresh
`VideoReformatter`'s first frame, 0.06 ms per frame once built), more than decoding a small
clip; `frame.reformat` builds one per frame. One reformatter per thread is reused for every
read, and rebuilds its context only when the source or output size or format changes; a forked
process starts with none of its parent's. Each conversion runs on the calling thread: PyAV >= 17
otherwise starts a scaler thread per core in every loader worker, 16 x 16 threads for 16
workers on a 16-core GPU box (two processes with 16 scaler threads each on 2 cores converted
5x fewer frames than with one each).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable

import numpy as np

_local = threading.local()
_inherited: list[threading.local] = []  # a forked child's copies of its parent's contexts


def _forget_after_fork() -> None:
    """A forked child (a DataLoader worker) must neither use nor free its parent's swscale
    context: FFmpeg's scaler threads do not exist in the child, and both wait for them (a read
    in a worker hung). The copy is kept, unused, and the child builds its own."""
    global _local
    _inherited.append(_local)
    _local = threading.local()


os.register_at_fork(after_in_child=_forget_after_fork)


@functools.cache
def scaler() -> str:
    """The swscale filter decord resizes with, so both backends give the same pixels:
    bilinear in decord 0.x, bicubic in its maintained fork decord2 (3.x)."""
    try:
        import decord
    except ImportError:
        return "BILINEAR"
    return "BILINEAR" if decord.__version__.startswith("0.") else "BICUBIC"


def _reformatter():
    """This thread's reformatter (DataLoader workers are processes: one each)."""
    if not hasattr(_local, "reformatter"):
        from av.video.reformatter import VideoReformatter

        _local.reformatter = VideoReformatter()
    return _local.reformatter


def rgb_converter(width: int, height: int, rotation: int) -> Callable[[object], np.ndarray]:
    """A function frame -> (H, W, 3) uint8 at ``width`` x ``height`` (the coded size before the
    display rotation), rotated by ``rotation`` quarter turns anticlockwise."""
    reformatter, interpolation = _reformatter(), scaler()

    def to_rgb(frame) -> np.ndarray:
        image = reformatter.reformat(
            frame,
            width=width,
            height=height,
            format="rgb24",
            interpolation=interpolation,
            threads=1,  # a loader worker is one core; the workers are the parallelism
        )
        return np.rot90(image.to_ndarray(), rotation)

    return to_rgb
