"""How an evaluation is shown and kept: the terminal table, the JSON file, the confusion PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nlvideo.metrics import EvalReport, format_percent


def format_report(report: EvalReport, *, max_failed: int = 20) -> str:
    """Human-readable summary: headline metrics, per-class accuracy, failed videos."""
    lines = [
        f"videos: {report.num_videos} | evaluated: {report.num_evaluated} | "
        f"failed: {len(report.failed)} | views scored: {report.num_clips}",
        "",
        f"{'metric':<22}{'value':>9}",
        "-" * 31,
    ]
    for name, value in (
        ("clip top-1", report.clip_top1),
        ("clip top-5", report.clip_top5),
        ("video top-1", report.video_top1),
        ("video top-5", report.video_top5),
        ("mean class accuracy", report.mean_class_accuracy),
    ):
        lines.append(f"{name:<22}{format_percent(value):>9}")
    support = report.confusion.sum(axis=1).tolist()
    width = max([len(c) for c in report.classes] + [5])
    lines += ["", f"{'class':<{width}}  {'top-1':>7}  {'videos':>6}", "-" * (width + 17)]
    for name, acc, n in zip(report.classes, report.per_class_accuracy, support, strict=True):
        lines.append(f"{name:<{width}}  {format_percent(acc):>7}  {n:>6}")
    if report.failed:
        lines += ["", f"FAILED: {len(report.failed)} video(s) could not be evaluated:"]
        for failure in report.failed[:max_failed]:
            lines.append(f"  {failure.path}: {failure.reason}")
        if len(report.failed) > max_failed:
            lines.append(f"  ... and {len(report.failed) - max_failed} more (see the JSON report)")
    return "\n".join(lines)


def save_json(report: EvalReport, path: str | Path) -> None:
    """Write ``report.to_dict()`` as indented JSON (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")


def save_confusion_png(report: EvalReport, path: str | Path) -> None:
    """Confusion matrix (rows normalised, counts written when there are few classes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(report.confusion, dtype=np.float64).reshape(len(report.classes), -1)
    support = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, support, out=np.zeros_like(counts), where=support > 0)
    n = len(report.classes)
    side = min(max(4.0, 0.45 * n + 2.0), 40.0)
    fig = Figure(figsize=(side, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    if n <= 40:
        ax.set_xticks(range(n), report.classes, rotation=90, fontsize=8)
        ax.set_yticks(range(n), report.classes, fontsize=8)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    colour = "white" if rates[i, j] > 0.5 else "black"
                    ax.text(j, i, int(counts[i, j]), ha="center", va="center", color=colour)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"video top-1 {format_percent(report.video_top1)} ({report.num_evaluated} videos)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def save_report(report: EvalReport, out_dir: str | Path) -> tuple[Path, Path]:
    """``eval_report.json`` and ``confusion.png`` in ``out_dir``; returns both paths."""
    out_dir = Path(out_dir)
    json_path, png_path = out_dir / "eval_report.json", out_dir / "confusion.png"
    save_json(report, json_path)
    save_confusion_png(report, png_path)
    return json_path, png_path
