"""nlvideo-infer: top-k classes of video files, or a timeline with --per-window.

Command line::

    nlvideo-infer a.mp4 b.mp4 --checkpoint runs/default/best.pt [--topk 5] [--json]
    nlvideo-infer long.mp4 --checkpoint best.pt --per-window [--window-step 1.0]

The answer per video is the mean of the softmax over all its views (clips x crops). With
--per-window the windows tile the video by default (each starts where the previous ends, the
last ends at the video's end) and "overall" is the mean of the windows' probabilities, i.e.
again the mean over all views. A video shorter than one clip is classified from clips whose
last frame repeats, and the result says so ("short": true in --json).

An unreadable file is reported with its path and the reason; the others are still
processed, and the exit status is 1 if any file failed (2 for a bad checkpoint/argument).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nlvideo.cli.common import new_parser, run_command, setup_logging

if TYPE_CHECKING:
    import numpy as np

    from nlvideo.engine.predictor import Predictor, VideoPrediction

PROG = "nlvideo-infer"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = new_parser(PROG, __doc__, checkpoint=True)
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    p.add_argument("--topk", type=int, default=5, help="classes shown per video (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--per-window", action="store_true", help="predictions over sliding windows")
    p.add_argument(
        "--window-step",
        type=float,
        default=None,
        help="seconds between window starts (default: one clip, windows tile the video)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--clips", type=int, help="temporal clips per video (default: checkpoint's)")
    p.add_argument("--crops", type=int, choices=(1, 3), help="spatial crops per clip")
    p.add_argument("--backend", choices=("decord", "pyav"), help="video reader")
    args = p.parse_args(argv)
    if args.topk < 1:
        p.error(f"--topk must be >= 1, got {args.topk}")
    if args.window_step is not None and args.window_step <= 0:
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
        "clip_frames": pred.clip_frames,
        "short": pred.short,  # shorter than one clip: frames repeated
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
    if pred.short:
        lines.append(
            f"  short video: {pred.num_frames} frames, a clip needs {pred.clip_frames}; "
            "its last frame is repeated"
        )
    width = max(len(c) for c in predictor.classes)
    if pred.windows:
        for w in pred.windows:
            best = "  ".join(f"{c} {100 * p:5.1f}%" for c, p in predictor.topk(w.probs, k))
            lines.append(f"  {w.start_s:7.2f}-{w.end_s:7.2f} s  {best}")
        lines.append("  overall (mean of the windows):")
    for rank, (c, p) in enumerate(predictor.topk(pred.probs, k), 1):
        lines.append(f"  {rank:>2}. {c:<{width}}  {100 * p:6.2f}%")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nlvideo-infer``; returns the exit status."""
    args = parse_args(argv)
    setup_logging(logging.WARNING)
    logging.getLogger("nlvideo.data").setLevel(logging.ERROR)  # failures are reported below
    files = [("--checkpoint", args.checkpoint)]
    return run_command(PROG, lambda: _infer(args), debug=args.debug, files=files)


def _infer(args: argparse.Namespace) -> int:
    from nlvideo.pipeline import build_predictor

    overrides = [
        f"data.{key}={value}"
        for key, value in (
            ("num_clips", args.clips),
            ("num_crops", args.crops),
            ("backend", args.backend),
        )
        if value is not None
    ]
    predictor = build_predictor(args.checkpoint, device=args.device, overrides=overrides)
    results, failed = [], 0
    for path in args.videos:
        if args.per_window:
            pred = predictor.predict_windows(path, window_step_s=args.window_step)
        else:
            pred = predictor.predict(path)
        failed += not pred.ok
        if not pred.ok:
            print(f"{PROG}: {pred.path}: {pred.error}", file=sys.stderr)
        if args.json:
            results.append(_to_json(pred, predictor, args.topk))
        elif pred.ok:
            print(_to_text(pred, predictor, args.topk), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    if failed:
        print(f"{PROG}: {failed} of {len(args.videos)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
