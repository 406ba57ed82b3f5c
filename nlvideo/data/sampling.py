"""Pure frame-index and crop-offset samplers (no I/O).

Temporal convention (PySlowFast): a clip is `num_frames` frames taken every `stride` frames, so
it spans `num_frames * stride` frames. With `target_fps` the stride counts frames of the video
resampled to that rate, so an 8x8 clip covers the same seconds whatever the source rate. Indices
past the end of a short video repeat its last frame, so even a 1-frame video yields a full clip.
"""

from __future__ import annotations

import math

import numpy as np


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if value is None or value <= 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


def frame_step(
    stride: int, video_fps: float | None = None, target_fps: float | None = None
) -> float:
    """Distance in source frames between two sampled frames.

    Args:
        stride: Sampling stride in frames at `target_fps` (or at the native rate without one).
        video_fps: Native frame rate of the video; needed only with `target_fps`.
        target_fps: Rate at which `stride` is counted; None keeps the native rate.
    """
    _check_positive(stride=stride)
    if target_fps is None:
        return float(stride)
    _check_positive(target_fps=target_fps, video_fps=video_fps)
    return stride * float(video_fps) / float(target_fps)


def window_indices(start: float, step: float, num_frames: int, video_frames: int) -> np.ndarray:
    """Frame indices of one window, clamped to the video (the last frame repeats).

    Args:
        start: First frame position (may be fractional when resampling).
        step: Distance between sampled frames, in source frames.
        num_frames: Frames in the clip.
        video_frames: Frames in the video.

    Returns:
        int64 array (num_frames,).
    """
    _check_positive(num_frames=num_frames, video_frames=video_frames)
    positions = start + step * np.arange(num_frames, dtype=np.float64)
    # A tiny epsilon keeps e.g. 3 * (30/30) from flooring to 2 through rounding.
    return np.clip(np.floor(positions + 1e-6).astype(np.int64), 0, video_frames - 1)


def _max_start(video_frames: int, num_frames: int, step: float) -> int:
    """Largest integer start that keeps a window inside the video (0 if it never fits)."""
    span = step * (num_frames - 1) + 1
    return max(math.floor(video_frames - span), 0)


def train_clip_indices(
    video_frames: int,
    *,
    num_frames: int,
    stride: int,
    generator: np.random.Generator,
    video_fps: float | None = None,
    target_fps: float | None = None,
) -> np.ndarray:
    """One training window at a uniformly random start.

    Args:
        video_frames: Frames in the video.
        num_frames: Frames per clip (8 for 8x8).
        stride: Frames between samples (8 for 8x8), at `target_fps` if given.
        generator: Source of randomness, so a seed reproduces the clip.
        video_fps: Native frame rate (only used with `target_fps`).
        target_fps: Resample to this rate first; None keeps the native rate.

    Returns:
        int64 array (num_frames,) of frame indices in [0, video_frames).
    """
    step = frame_step(stride, video_fps, target_fps)
    start = int(generator.integers(0, _max_start(video_frames, num_frames, step) + 1))
    return window_indices(start, step, num_frames, video_frames)


def uniform_clip_indices(
    video_frames: int,
    *,
    num_frames: int,
    stride: int,
    num_clips: int,
    video_fps: float | None = None,
    target_fps: float | None = None,
) -> np.ndarray:
    """`num_clips` windows uniformly spaced from the first to the last possible start.

    One clip is centred. Deterministic: the same video always gives the same views.

    Returns:
        int64 array (num_clips, num_frames).
    """
    _check_positive(num_clips=num_clips)
    step = frame_step(stride, video_fps, target_fps)
    last = _max_start(video_frames, num_frames, step)
    starts = np.array([last / 2]) if num_clips == 1 else np.linspace(0, last, num_clips)
    starts = np.floor(starts + 0.5)
    return np.stack([window_indices(s, step, num_frames, video_frames) for s in starts])


def resized_shape(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) after scaling the shorter side to `short_side` (PySlowFast rounding).

    The longer side is floored, so 640x360 at 256 becomes 455x256. None keeps the size.
    """
    _check_positive(height=height, width=width)
    if short_side is None:
        return height, width
    _check_positive(short_side=short_side)
    if height <= width:
        return short_side, max(math.floor(width * short_side / height), 1)
    return max(math.floor(height * short_side / width), 1), short_side


def crop_offsets(height: int, width: int, crop_size: int, num_crops: int) -> list[tuple[int, int]]:
    """Top-left corners of the test-time crops.

    One crop is centred; three crops sit at the start, centre and end of the longer axis and
    are centred on the shorter one (PySlowFast `uniform_crop`).

    Returns:
        [(y, x), ...] of length `num_crops`.
    """
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    if crop_size > min(height, width):
        raise ValueError(f"crop_size {crop_size} exceeds the frame {height}x{width}")
    y_mid = math.ceil((height - crop_size) / 2)
    x_mid = math.ceil((width - crop_size) / 2)
    if num_crops == 1:
        return [(y_mid, x_mid)]
    if height > width:
        return [(0, x_mid), (y_mid, x_mid), (height - crop_size, x_mid)]
    return [(y_mid, 0), (y_mid, x_mid), (y_mid, width - crop_size)]
