"""Decoded frame -> RGB: PyAV's own conversion, on the calling thread only."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from nlvideo.data import frame_rgb
from nlvideo.data.frame_rgb import rgb_converter

TASKS = Path("/proc/self/task")  # one entry per OS thread of this process (Linux)


def yuv_frame(width: int = 340, height: int = 256) -> av.VideoFrame:
    rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def test_conversion_equals_pyav_rgb24():
    frame = yuv_frame()
    expected = frame.to_ndarray(format="rgb24")
    np.testing.assert_array_equal(rgb_converter(340, 256, 0)(frame), expected)


def test_a_quarter_turn_rotates_anticlockwise():
    frame = yuv_frame()
    expected = np.rot90(frame.to_ndarray(format="rgb24"), 1)
    np.testing.assert_array_equal(rgb_converter(340, 256, 1)(frame), expected)


@pytest.mark.skipif(not TASKS.is_dir() or (os.cpu_count() or 1) < 2, reason="needs Linux, 2 cores")
def test_conversion_starts_no_scaler_threads(monkeypatch):
    """A loader worker is one core: FFmpeg's per-core scaler threads (PyAV's default) made 16
    workers on 16 cores wait for one another."""
    monkeypatch.setattr(frame_rgb, "_local", threading.local())  # a fresh reformatter
    frame = yuv_frame()
    before = {task.name for task in TASKS.iterdir()}
    rgb_converter(176, 144, 0)(frame)  # scaled: swscale does the work
    started = {task.name for task in TASKS.iterdir()} - before  # (threads may end meanwhile)
    assert not started, f"{len(started)} threads started"
