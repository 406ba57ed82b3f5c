"""Classify video files with a trained checkpoint: top-k classes per video, or a timeline.

Uses the data package's reader, frame sampler and device transform, so a video is seen
exactly as in evaluation: ``num_clips`` uniformly spaced clips x ``num_crops`` crops, softmax
averaged over the views. ``--per-window`` slides one clip along the video instead (a
timeline of predictions for long videos). Works on CPU or GPU, any resolution and length.

Command line::

    nlvideo-infer a.mp4 b.mp4 --checkpoint runs/default/best.pt [--topk 5] [--json]
    nlvideo-infer long.mp4 --checkpoint best.pt --per-window --window-step 1.0

An unreadable file is reported with its path and the reason; the others are still
processed, and the exit status is 1 if any file failed (2 for a bad checkpoint/argument).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nlvideo.data.annotations import VideoRecord
from nlvideo.data.dataset import VideoClipDataset
from nlvideo.data.gpu import DeviceTransform
from nlvideo.data.sampling import frame_step, window_indices
from nlvideo.data.video import VideoError, frames_to_clips, open_video

logger = logging.getLogger(__name__)

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

    @property
    def ok(self) -> bool:
        return self.error is None


class Predictor:
    """A model plus the test-time view sampling it was evaluated with.

    Args:
        model: Maps (N, 3, T, H, W) normalised clips to (N, C) logits.
        classes: Class names, indexed by the model's outputs.
        transform: Test-mode DeviceTransform (resize, crops, normalisation).
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
        transform: DeviceTransform,
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
        if transform.mode != "test":
            raise ValueError(f"transform must be in test mode, got mode={transform.mode!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.classes = list(classes)
        self.transform = transform
        self.num_frames, self.stride, self.target_fps = num_frames, stride, target_fps
        self.num_clips, self.short_side, self.backend = num_clips, short_side, backend
        self.amp = amp if self.device.type == "cuda" else "none"
        self.max_views_per_forward = max_views_per_forward

    @torch.inference_mode()
    def _probs(self, clips: torch.Tensor) -> np.ndarray:
        """uint8 (K, 3, T, H, W) -> (K * crops, C) probabilities."""
        views = self.transform(clips.to(self.device))
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        autocast = (
            torch.autocast(device_type=self.device.type, dtype=dtype)
            if self.amp != "none"
            else contextlib.nullcontext()
        )
        out = []
        with autocast:
            for i in range(0, views.shape[0], self.max_views_per_forward):
                logits = self.model(views[i : i + self.max_views_per_forward])
                out.append(torch.softmax(logits.float(), dim=1).cpu())
        return torch.cat(out).numpy()

    def predict(self, path: str | Path) -> VideoPrediction:
        """Average the softmax over ``num_clips`` clips x crops; errors go into ``error``.

        The clips come from the evaluation dataset itself, so a video gets the same views
        (and the same failure reasons) as in ``nlvideo.eval``.
        """
        result = VideoPrediction(str(path))
        dataset = VideoClipDataset(
            [VideoRecord(path=str(path), label=0, video_id=Path(path).stem)],
            mode="test",
            num_frames=self.num_frames,
            stride=self.stride,
            target_fps=self.target_fps,
            num_clips=self.num_clips,
            num_crops=self.transform.num_crops,
            short_side=self.short_side,
            backend=self.backend,
        )
        item = dataset[0]
        if item.failure is not None or item.clips is None or item.clips.shape[0] == 0:
            result.error = item.failure[2] if item.failure else "no frames decoded"
            return result
        try:
            with open_video(path, backend=self.backend, short_side=self.short_side) as reader:
                result.num_frames, result.fps = reader.num_frames, reader.fps
        except Exception:  # decoded above, so only the length is unknown: keep the prediction
            logger.warning("%s: cannot read the frame count", path)
        probs = self._probs(item.clips)
        result.probs, result.num_views = probs.mean(axis=0), probs.shape[0]
        return result

    def predict_windows(self, path: str | Path, *, window_step_s: float = 1.0) -> VideoPrediction:
        """Slide one clip along the video every ``window_step_s`` seconds (a timeline).

        ``probs`` is the mean over all windows; every window averages its crops.
        """
        if window_step_s <= 0:
            raise ValueError(f"window_step_s must be > 0, got {window_step_s}")
        result = VideoPrediction(str(path))
        try:
            with open_video(path, backend=self.backend, short_side=self.short_side) as reader:
                n, fps = reader.num_frames, reader.fps
                result.num_frames, result.fps = n, fps
                step = frame_step(self.stride, fps, self.target_fps)
                span = step * (self.num_frames - 1) + 1  # frames covered by one clip
                starts = _window_starts(n, span, window_step_s * fps)
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


def build_predictor(
    checkpoint: str | Path,
    *,
    device: str = "auto",
    overrides: Sequence[str] = (),
) -> Predictor:
    """A Predictor from an nlvideo checkpoint: its model, classes and test-time config.

    Args:
        checkpoint: Path of the checkpoint.
        device: "auto" (GPU if available), "cpu", "cuda" or "cuda:N".
        overrides: Dotlist config overrides, e.g. ``data.num_clips=4``.

    Raises:
        FileNotFoundError, ValueError: naming the checkpoint or the key.
    """
    from nlvideo.engine.checkpoint import build_model_from_checkpoint, load_checkpoint
    from nlvideo.engine.distributed import resolve_device
    from nlvideo.eval import build_test_transform, checkpoint_config

    ckpt = load_checkpoint(checkpoint)
    cfg = checkpoint_config(ckpt, overrides)
    dev = resolve_device(device)
    model = build_model_from_checkpoint(ckpt, device=dev, source=str(checkpoint))
    d = cfg.data
    return Predictor(
        model,
        ckpt["classes"],
        transform=build_test_transform(cfg),
        num_frames=d.num_frames,
        stride=d.stride,
        target_fps=d.target_fps,
        num_clips=d.num_clips,
        short_side=d.short_side or None,
        backend=d.backend,
        device=dev,
        amp=cfg.train.amp,
    )


# --------------------------------------------------------------------------- command line


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="nlvideo-infer",
        description="Top-k classes of video files (softmax averaged over clips x crops), "
        "or a timeline over sliding windows with --per-window.",
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    p.add_argument("--checkpoint", required=True, help="nlvideo checkpoint (.pt)")
    p.add_argument("--topk", type=int, default=5, help="classes shown per video (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--per-window", action="store_true", help="predictions over sliding windows")
    p.add_argument("--window-step", type=float, default=1.0, help="seconds between windows")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--clips", type=int, help="temporal clips per video (default: checkpoint's)")
    p.add_argument("--crops", type=int, choices=(1, 3), help="spatial crops per clip")
    p.add_argument("--backend", choices=("decord", "pyav"), help="video reader")
    args = p.parse_args(argv)
    if args.topk < 1:
        p.error(f"--topk must be >= 1, got {args.topk}")
    if args.window_step <= 0:
        p.error(f"--window-step must be > 0, got {args.window_step}")
    return args


def _to_json(pred: VideoPrediction, predictor: Predictor, k: int) -> dict[str, Any]:
    if not pred.ok:
        return {"path": pred.path, "ok": False, "error": pred.error}

    def top(probs: np.ndarray) -> list[dict[str, Any]]:
        return [{"class": c, "prob": round(p, 6)} for c, p in predictor.topk(probs, k)]

    out: dict[str, Any] = {
        "path": pred.path,
        "ok": True,
        "num_frames": pred.num_frames,
        "fps": pred.fps,
        "duration_s": pred.num_frames / pred.fps if pred.fps else None,
        "num_views": pred.num_views,
        "top": top(pred.probs),
    }
    if pred.windows:
        out["windows"] = [
            {"start_s": round(w.start_s, 3), "end_s": round(w.end_s, 3), "top": top(w.probs)}
            for w in pred.windows
        ]
    return out


def _to_text(pred: VideoPrediction, predictor: Predictor, k: int) -> str:
    seconds = pred.num_frames / pred.fps if pred.fps else 0.0
    lines = [f"{pred.path}  ({seconds:.2f} s, {pred.num_frames} frames, {pred.num_views} views)"]
    width = max(len(c) for c in predictor.classes)
    if pred.windows:
        for w in pred.windows:
            best = "  ".join(f"{c} {100 * p:5.1f}%" for c, p in predictor.topk(w.probs, k))
            lines.append(f"  {w.start_s:7.2f}-{w.end_s:7.2f} s  {best}")
        lines.append("  overall:")
    for rank, (c, p) in enumerate(predictor.topk(pred.probs, k), 1):
        lines.append(f"  {rank:>2}. {c:<{width}}  {100 * p:6.2f}%")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nlvideo-infer`` / ``python -m nlvideo.infer``; returns the exit status."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("nlvideo.data").setLevel(logging.ERROR)  # failures are reported below
    overrides = [
        f"data.{key}={value}"
        for key, value in (
            ("num_clips", args.clips),
            ("num_crops", args.crops),
            ("backend", args.backend),
        )
        if value is not None
    ]
    try:
        predictor = build_predictor(args.checkpoint, device=args.device, overrides=overrides)
    except (ValueError, FileNotFoundError) as e:
        print(f"nlvideo-infer: {e}", file=sys.stderr)
        return 2
    results, failed = [], 0
    for path in args.videos:
        if args.per_window:
            pred = predictor.predict_windows(path, window_step_s=args.window_step)
        else:
            pred = predictor.predict(path)
        failed += not pred.ok
        if not pred.ok:
            print(f"nlvideo-infer: {pred.path}: {pred.error}", file=sys.stderr)
        if args.json:
            results.append(_to_json(pred, predictor, args.topk))
        elif pred.ok:
            print(_to_text(pred, predictor, args.topk), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    if failed:
        print(f"nlvideo-infer: {failed} of {len(args.videos)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
