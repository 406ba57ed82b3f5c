"""Classify video files with a trained model: top-k classes per video, or a timeline.

Uses the data package's reader, frame sampler and test transform, so a video is seen
exactly as in evaluation: ``num_clips`` uniformly spaced clips x ``num_crops`` crops, softmax
averaged over the views. ``predict_windows`` slides one clip along the video instead (a
timeline of predictions for long videos). Works on CPU or GPU, any resolution and length.

The overall answer, defined once: ``probs`` is the mean of the softmax over all views the
video got, every view weighted equally. For ``predict`` the views are ``num_clips`` uniformly
spaced clips x ``num_crops`` crops; for ``predict_windows`` they are the windows x crops (so
it is the mean of the windows' probabilities), and it equals ``predict``'s when the windows
start where ``predict``'s clips do. By default windows tile the video: each starts where the
previous one ends, the last ends at the video's end, no frame is left out.

A video shorter than one clip (``clip_frames``) is still classified, from clips whose last
frame repeats; ``VideoPrediction.short`` says so and the command line prints it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nlvideo.data.annotations import VideoRecord
from nlvideo.data.dataset import VideoClipDataset
from nlvideo.data.sampling import frame_step, window_indices
from nlvideo.data.transforms import TestTransform
from nlvideo.data.video import VideoError, frames_to_clips, open_video
from nlvideo.engine.precision import autocast, effective_amp

logger = logging.getLogger(__name__)

# The sampling a video's test views depend on: VideoClipDataset's keywords, our attributes.
_CLIP_OPTIONS = ("num_frames", "stride", "target_fps", "num_clips", "short_side", "backend")
_WINDOWS_PER_READ = 16  # sliding windows decoded at once (bounds memory on long videos)


@dataclass
class WindowPrediction:
    """Class probabilities of one sliding window."""

    start_s: float
    end_s: float
    probs: np.ndarray  # (C,), averaged over the window's crops


@dataclass
class VideoPrediction:
    """Result for one file: ``probs`` averaged over all views, or ``error`` when unreadable."""

    path: str
    probs: np.ndarray | None = None  # (C,)
    num_views: int = 0
    num_frames: int = 0
    fps: float = 0.0
    windows: list[WindowPrediction] = field(default_factory=list)
    error: str | None = None
    clip_frames: int = 0  # source frames one clip spans (num_frames at the stride)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def short(self) -> bool:
        """The video is shorter than one clip: its clips repeat its last frame."""
        return self.ok and 0 < self.num_frames < self.clip_frames


class Predictor:
    """A model plus the test-time view sampling it was evaluated with.

    Args:
        model: Maps (N, 3, T, H, W) normalised clips to (N, C) logits.
        classes: Class names, indexed by the model's outputs.
        transform: Test views (resize, crops, normalisation).
        num_frames: Frames per clip (T).
        stride: Frames between sampled frames (at ``target_fps`` when given).
        target_fps: Count ``stride`` at this frame rate; None keeps each video's own.
        num_clips: Uniformly spaced clips per video (whole-video prediction).
        short_side: Decode-time resize of the shorter side; None keeps the size.
        backend: Video reader, "decord" or "pyav".
        device: Where the model runs.
        amp: "none", "bf16" or "fp16" autocast (CUDA only; ignored on CPU).
        max_views_per_forward: Largest batch of views given to the model at once.
    """

    def __init__(
        self,
        model: nn.Module,
        classes: Sequence[str],
        *,
        transform: TestTransform,
        num_frames: int,
        stride: int,
        target_fps: float | None = None,
        num_clips: int = 10,
        short_side: int | None = 256,
        backend: str = "decord",
        device: torch.device | str = "cpu",
        amp: str = "none",
        max_views_per_forward: int = 32,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.classes = list(classes)
        self.transform = transform
        self.num_frames, self.stride, self.target_fps = num_frames, stride, target_fps
        self.num_clips, self.short_side, self.backend = num_clips, short_side, backend
        self.amp = effective_amp(amp, self.device)
        self.max_views_per_forward = max_views_per_forward

    @torch.inference_mode()
    def _probs(self, clips: torch.Tensor) -> np.ndarray:
        """uint8 (K, 3, T, H, W) -> (K * crops, C) probabilities."""
        views = self.transform(clips.to(self.device))
        out = []
        with autocast(self.device, self.amp):
            for i in range(0, views.shape[0], self.max_views_per_forward):
                logits = self.model(views[i : i + self.max_views_per_forward])
                out.append(torch.softmax(logits.float(), dim=1).cpu())
        return torch.cat(out).numpy()

    def predict(self, path: str | Path) -> VideoPrediction:
        """Average the softmax over ``num_clips`` clips x crops; errors go into ``error``.

        The clips come from the evaluation dataset itself, so a video gets the same views
        (and the same failure reasons) as in evaluation.
        """
        result = VideoPrediction(str(path))
        dataset = VideoClipDataset(
            [VideoRecord(path=str(path), label=0, video_id=Path(path).stem)],
            mode="test",
            **{name: getattr(self, name) for name in _CLIP_OPTIONS},  # evaluation's sampling
        )
        item = dataset[0]
        if item.failure is not None or item.clips is None or item.clips.shape[0] == 0:
            result.error = item.failure.reason if item.failure else "no frames decoded"
            return result
        try:
            with open_video(path, backend=self.backend, short_side=self.short_side) as reader:
                result.num_frames, result.fps = reader.num_frames, reader.fps
                result.clip_frames = self._clip_frames(reader.fps)
        except Exception:  # decoded above, so only the length is unknown: keep the prediction
            logger.warning("%s: cannot read the frame count", path)
        probs = self._probs(item.clips)
        result.probs, result.num_views = probs.mean(axis=0), probs.shape[0]
        return result

    def _clip_frames(self, fps: float) -> int:
        """Source frames one clip spans at ``fps``."""
        return int(frame_step(self.stride, fps, self.target_fps) * (self.num_frames - 1)) + 1

    def predict_windows(
        self, path: str | Path, *, window_step_s: float | None = None
    ) -> VideoPrediction:
        """One clip every ``window_step_s`` seconds along the video (a timeline).

        Args:
            path: The video.
            window_step_s: Seconds between window starts; None (default) = one clip's
                length, so the windows tile the video without gaps (a larger step leaves
                gaps, a smaller one overlaps). The last window ends at the video's end.

        ``probs`` (overall) is the mean of the windows' probabilities, each the mean of its
        crops: the mean over all views, as in ``predict``.
        """
        if window_step_s is not None and window_step_s <= 0:
            raise ValueError(f"window_step_s must be > 0, got {window_step_s}")
        result = VideoPrediction(str(path))
        try:
            with open_video(path, backend=self.backend, short_side=self.short_side) as reader:
                n, fps = reader.num_frames, reader.fps
                result.num_frames, result.fps = n, fps
                step = frame_step(self.stride, fps, self.target_fps)
                span = step * (self.num_frames - 1) + 1  # frames covered by one clip
                result.clip_frames = self._clip_frames(fps)
                hop = span if window_step_s is None else window_step_s * fps
                starts = _window_starts(n, span, hop)
                crops = self.transform.num_crops
                for i in range(0, len(starts), _WINDOWS_PER_READ):
                    chunk = starts[i : i + _WINDOWS_PER_READ]
                    indices = np.stack([window_indices(s, step, self.num_frames, n) for s in chunk])
                    probs = self._probs(frames_to_clips(reader.read(indices)))
                    probs = probs.reshape(len(chunk), crops, -1).mean(axis=1)  # (K*C, N) -> (K, N)
                    for s, p in zip(chunk, probs, strict=True):
                        end = min(s + span, n)
                        result.windows.append(WindowPrediction(s / fps, end / fps, p))
        except Exception as e:  # any reader/decoder error: report it, go on with other files
            result.error, result.windows = _reason(e), []
            return result
        result.probs = np.mean([w.probs for w in result.windows], axis=0)
        result.num_views = len(result.windows) * self.transform.num_crops
        return result

    def topk(self, probs: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable (class name, probability) pairs, best first."""
        order = np.argsort(-probs, kind="stable")[:k]
        return [(self.classes[i], float(probs[i])) for i in order]


def _window_starts(num_frames: int, span: float, hop: float) -> list[int]:
    """Window start frames every ``hop`` frames, the last one ending at the video's end."""
    last = max(int(np.floor(num_frames - span)), 0)
    grid = np.floor(np.arange(0.0, last + 1e-9, max(hop, 1.0)) + 0.5).astype(np.int64)
    return sorted(set(grid.tolist()) | {last})


def _reason(e: Exception) -> str:
    if isinstance(e, VideoError):
        return e.reason
    return f"{type(e).__name__}: {e}"
