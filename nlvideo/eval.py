"""Multi-view evaluation: K temporal clips x C spatial crops per video, clip and video metrics.

``evaluate`` runs a model over device batches (any number of views per video), gathers the
per-view logits across DDP ranks without the duplicates DistributedSampler pads in, and
returns an ``EvalReport`` (terminal table, JSON, confusion-matrix PNG). Videos that failed to
decode are listed and counted, never silently dropped.

Command line::

    python -m nlvideo.eval --checkpoint runs/default/best.pt [--list val.txt --root /data]
        [--out DIR] [data.num_clips=10 data.num_crops=3 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from nlvideo.metrics import compute_metrics, format_percent

logger = logging.getLogger(__name__)

_HOST_EVERY = 16  # batches of logits kept on the device before one copy to the host


@dataclass
class EvalReport:
    """Results of one evaluation; accuracies are fractions in [0, 1] (NaN when undefined)."""

    clip_top1: float
    clip_top5: float
    video_top1: float  # over the evaluated videos (failed ones are listed in ``failed``)
    video_top5: float
    mean_class_accuracy: float
    per_class_accuracy: dict[str, float]  # class name -> video accuracy (NaN: no videos)
    confusion: list[list[int]]  # rows: true class, columns: predicted class (videos)
    num_videos: int  # videos asked for (the records)
    num_evaluated: int  # videos with at least one view scored
    failed: list[dict[str, Any]]  # {video_index, path, reason} of videos not evaluated
    classes: list[str] = field(default_factory=list)
    num_clips: int = 0  # views scored (after removing DDP padding duplicates)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (NaN becomes None)."""
        return {
            "clip_top1": _json_float(self.clip_top1),
            "clip_top5": _json_float(self.clip_top5),
            "video_top1": _json_float(self.video_top1),
            "video_top5": _json_float(self.video_top5),
            "mean_class_accuracy": _json_float(self.mean_class_accuracy),
            "per_class_accuracy": {k: _json_float(v) for k, v in self.per_class_accuracy.items()},
            "confusion": [list(map(int, row)) for row in self.confusion],
            "num_videos": self.num_videos,
            "num_evaluated": self.num_evaluated,
            "num_failed": len(self.failed),
            "failed": list(self.failed),
            "classes": list(self.classes),
            "num_clips": self.num_clips,
        }

    def save_json(self, path: str | Path) -> None:
        """Write ``to_dict()`` as indented JSON (parent folders created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def format_table(self, *, max_failed: int = 20) -> str:
        """Human-readable summary: headline metrics, per-class accuracy, failed videos."""
        lines = [
            f"videos: {self.num_videos} | evaluated: {self.num_evaluated} | "
            f"failed: {len(self.failed)} | views scored: {self.num_clips}",
            "",
            f"{'metric':<22}{'value':>9}",
            "-" * 31,
        ]
        for name, value in (
            ("clip top-1", self.clip_top1),
            ("clip top-5", self.clip_top5),
            ("video top-1", self.video_top1),
            ("video top-5", self.video_top5),
            ("mean class accuracy", self.mean_class_accuracy),
        ):
            lines.append(f"{name:<22}{format_percent(value):>9}")
        support = [sum(row) for row in self.confusion]
        width = max([len(c) for c in self.per_class_accuracy] + [5])
        lines += ["", f"{'class':<{width}}  {'top-1':>7}  {'videos':>6}", "-" * (width + 17)]
        for (name, acc), n in zip(self.per_class_accuracy.items(), support, strict=False):
            lines.append(f"{name:<{width}}  {format_percent(acc):>7}  {n:>6}")
        if self.failed:
            lines += ["", f"FAILED: {len(self.failed)} video(s) could not be evaluated:"]
            for item in self.failed[:max_failed]:
                lines.append(f"  {item['path']}: {item['reason']}")
            if len(self.failed) > max_failed:
                lines.append(
                    f"  ... and {len(self.failed) - max_failed} more (see the JSON report)"
                )
        return "\n".join(lines)

    def save_confusion_png(self, path: str | Path) -> None:
        """Confusion matrix (rows normalised, counts written when there are few classes)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        counts = np.asarray(self.confusion, dtype=np.float64).reshape(len(self.classes), -1)
        support = counts.sum(axis=1, keepdims=True)
        rates = np.divide(counts, support, out=np.zeros_like(counts), where=support > 0)
        n = len(self.classes)
        side = min(max(4.0, 0.45 * n + 2.0), 40.0)
        fig = Figure(figsize=(side, side), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
        if n <= 40:
            ax.set_xticks(range(n), self.classes, rotation=90, fontsize=8)
            ax.set_yticks(range(n), self.classes, fontsize=8)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    if counts[i, j]:
                        colour = "white" if rates[i, j] > 0.5 else "black"
                        ax.text(j, i, int(counts[i, j]), ha="center", va="center", color=colour)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"video top-1 {format_percent(self.video_top1)} ({self.num_evaluated} videos)")
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)


def _json_float(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "none":
        return contextlib.nullcontext()
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if amp not in dtypes:
        raise ValueError(f"amp must be one of none, bf16, fp16; got {amp!r}")
    return torch.autocast(device_type=device.type, dtype=dtypes[amp])


def _gather(local: dict[str, Any], distributed: bool) -> list[dict[str, Any]]:
    if not (distributed and dist.is_available() and dist.is_initialized()):
        return [local]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, local)
    return out


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    records: Sequence[Any],
    classes: Sequence[str],
    amp: str = "none",
    distributed: bool = False,
    max_views_per_forward: int | None = None,
) -> EvalReport:
    """Score every view of every video and aggregate clip- and video-level metrics.

    Args:
        model: Maps (B, 3, T, H, W) clips to (B, num_classes) logits; put in eval mode for the
            call and restored to its previous mode afterwards.
        batches: DeviceBatch-like objects (``clips``, ``labels``, ``video_index``,
            ``view_index``, ``failed``), e.g. from ``nlvideo.data.gpu.prefetch``.
        records: All videos of the evaluation (VideoRecord list; all ranks' videos under DDP).
        classes: Class names, indexed by label.
        amp: "none", "bf16" or "fp16" autocast for the forward pass.
        distributed: Gather results from all ranks (every rank gets the same report).
        max_views_per_forward: Split big batches into chunks of this many views (memory).
    """
    was_training = model.training
    model.eval()
    keys = ("logits", "labels", "video", "view")
    pending: dict[str, list[torch.Tensor]] = {k: [] for k in keys}  # on the device
    host: dict[str, list[np.ndarray]] = {
        "logits": [np.zeros((0, len(classes)), np.float32)],
        **{k: [np.zeros(0, np.int64)] for k in keys[1:]},
    }
    failed: dict[int, tuple[str, str]] = {}

    def flush() -> None:  # one device sync per group of batches, not one per batch
        for k in keys:
            if pending[k]:
                host[k].append(torch.cat(pending[k]).cpu().numpy())
                pending[k].clear()

    try:
        for batch in batches:
            for video, path, reason in batch.failed:
                failed.setdefault(int(video), (str(path), str(reason)))
            clips = batch.clips
            if clips.shape[0] == 0:
                continue
            step = max_views_per_forward or clips.shape[0]
            with _autocast(clips.device, amp):
                out = [model(clips[i : i + step]) for i in range(0, clips.shape[0], step)]
            values = (torch.cat(out).float(), batch.labels, batch.video_index, batch.view_index)
            for k, v in zip(keys, values, strict=True):
                pending[k].append(v)
            if len(pending["logits"]) == _HOST_EVERY:
                flush()
        flush()
    finally:
        model.train(was_training)
    local: dict[str, Any] = {k: np.concatenate(v) for k, v in host.items()}
    local["failed"] = failed
    return _report(_gather(local, distributed), records=records, classes=classes)


def _report(
    parts: list[dict[str, Any]], *, records: Sequence[Any], classes: Sequence[str]
) -> EvalReport:
    """Merge per-rank results, drop repeated (video, view) pairs, compute metrics."""
    logits = np.concatenate([p["logits"] for p in parts])
    labels = np.concatenate([p["labels"] for p in parts]).astype(np.int64)
    video = np.concatenate([p["video"] for p in parts]).astype(np.int64)
    view = np.concatenate([p["view"] for p in parts]).astype(np.int64)
    if len(video) and (video.min() < 0 or video.max() >= len(records)):
        raise ValueError(
            f"video_index out of range: got {video.min()}..{video.max()} for {len(records)} records"
        )
    # DistributedSampler repeats videos to even out the ranks: keep each view once.
    keys = np.stack([video, view], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True) if len(keys) else (None, np.zeros(0, int))
    first = np.sort(first)
    if len(first) < len(video):
        logger.debug("dropped %d repeated views (DDP padding)", len(video) - len(first))
    logits, labels, video = logits[first], labels[first], video[first]
    metrics = compute_metrics(logits, labels, video, len(classes))

    evaluated = set(metrics.videos.tolist())
    failed: dict[int, tuple[str, str]] = {}
    for p in parts:
        for idx, item in p["failed"].items():
            failed.setdefault(idx, item)
    failed_list = [
        {"video_index": idx, "path": path, "reason": reason}
        for idx, (path, reason) in sorted(failed.items())
        if idx not in evaluated
    ]
    missing = sorted(set(range(len(records))) - evaluated - set(failed))
    failed_list += [
        {
            "video_index": idx,
            "path": str(records[idx].path),
            "reason": "not evaluated: no views scored and no error reported",
        }
        for idx in missing
    ]
    failed_list.sort(key=lambda item: item["video_index"])
    if failed_list:
        logger.warning(
            "%d of %d videos could not be evaluated, e.g. %s: %s",
            len(failed_list),
            len(records),
            failed_list[0]["path"],
            failed_list[0]["reason"],
        )
    return EvalReport(
        clip_top1=metrics.clip_top1,
        clip_top5=metrics.clip_top5,
        video_top1=metrics.video_top1,
        video_top5=metrics.video_top5,
        mean_class_accuracy=metrics.mean_class_accuracy,
        per_class_accuracy=dict(zip(classes, metrics.per_class_accuracy.tolist(), strict=True)),
        confusion=metrics.confusion.tolist(),
        num_videos=len(records),
        num_evaluated=len(evaluated),
        failed=failed_list,
        classes=list(classes),
        num_clips=metrics.num_clips,
    )


# --------------------------------------------------------------------------- command line


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nlvideo-eval",
        description="Multi-view evaluation of an nlvideo checkpoint (clip/video accuracy, "
        "per-class accuracy, confusion matrix).",
    )
    parser.add_argument("--checkpoint", required=True, help="nlvideo checkpoint (.pt)")
    parser.add_argument(
        "--list",
        default="",
        help="'path label' list or Kinetics CSV (default: the checkpoint config's validation list)",
    )
    parser.add_argument("--root", default=None, help="prefix for relative video paths")
    parser.add_argument("--out", default="", help="output folder (default: beside the checkpoint)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.num_clips=10")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nlvideo-eval`` / ``python -m nlvideo.eval``; returns the exit status."""
    from nlvideo.engine.checkpoint import build_model_from_checkpoint, load_checkpoint
    from nlvideo.engine.distributed import cleanup, init_distributed

    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        ckpt = load_checkpoint(args.checkpoint)
        cfg = checkpoint_config(ckpt, args.overrides)
    except (ValueError, FileNotFoundError) as e:
        print(f"nlvideo-eval: {e}", file=sys.stderr)
        return 2
    info = init_distributed(cfg.train.device)
    try:
        classes = list(ckpt["classes"])
        records, list_path = _records(cfg, args, classes, info)
        model = build_model_from_checkpoint(ckpt, device=info.device, source=args.checkpoint)
        batches = build_test_batches(cfg, records, info.device, distributed=info.distributed)
        amp = cfg.train.amp if info.device.type == "cuda" else "none"  # as in training
        report = evaluate(
            model, batches, records=records, classes=classes, amp=amp, distributed=info.distributed
        )
        if info.is_main:
            out = Path(args.out or Path(args.checkpoint).parent / f"eval_{Path(list_path).stem}")
            report.save_json(out / "eval_report.json")
            report.save_confusion_png(out / "confusion.png")
            print(f"checkpoint: {args.checkpoint}\nlist: {list_path}\n")
            print(report.format_table())
            print(
                f"\nreport: {out / 'eval_report.json'}\nconfusion matrix: {out / 'confusion.png'}"
            )
    except ValueError as e:
        print(f"nlvideo-eval: {e}", file=sys.stderr)
        return 2
    finally:
        cleanup(info)
    return 0


def checkpoint_config(ckpt: dict[str, Any], overrides: Sequence[str] = ()) -> Any:
    """The config a checkpoint was trained with, dotlist ``overrides`` applied and validated.

    Raises:
        ValueError: naming the key, for a bad override or an invalid stored config.
    """
    from nlvideo.config import config_from_dict, config_to_yaml, load_config

    cfg = config_from_dict(ckpt["config"])
    if not overrides:
        return cfg
    with tempfile.TemporaryDirectory() as tmp:  # load_config merges overrides onto a file
        path = Path(tmp) / "config.yaml"
        path.write_text(config_to_yaml(cfg))
        return load_config(path, overrides)


def _records(
    cfg: Any, args: argparse.Namespace, classes: list[str], info: Any
) -> tuple[list[Any], str]:
    """The videos to evaluate: --list, else the config's validation list (built-in data too)."""
    from nlvideo.data.annotations import load_kinetics_csv, load_video_list

    list_path = args.list or cfg.data.val_list
    if not args.list and cfg.data.builtin:  # generated (or reused) exactly as in training
        from nlvideo.engine.trainer import build_run_data

        data = build_run_data(cfg, info)
        if list(data.classes) != classes:
            raise ValueError(f"checkpoint {args.checkpoint}: its classes differ from the data's")
        return data.val, "builtin_val"
    if not list_path:
        raise ValueError("no list to evaluate: pass --list or set data.val_list")
    root = args.root if args.root is not None else (cfg.data.root or None)
    if str(list_path).endswith(".csv"):
        records, _ = load_kinetics_csv(list_path, root=root, classes=classes)
    else:
        records, _ = load_video_list(list_path, root=root, classes=classes)
    return records, str(list_path)


def build_test_transform(cfg: Any) -> Any:
    """The test-time DeviceTransform of a config (resize to test_scale, num_crops crops)."""
    from nlvideo.data.gpu import DeviceTransform

    d = cfg.data
    crop = d.test_crop_size or d.crop_size
    return DeviceTransform(
        mode="test",
        crop_size=crop,
        train_scale=(crop, crop),  # unused in test mode
        test_scale=d.test_scale,
        num_crops=d.num_crops,
    )


def build_test_batches(
    cfg: Any, records: Sequence[Any], device: torch.device, *, distributed: bool = False
) -> Iterable[Any]:
    """Test-mode DeviceBatches (num_clips x num_crops views per video) of ``records``."""
    from nlvideo.data.dataset import VideoClipDataset
    from nlvideo.data.gpu import build_loader, prefetch

    d = cfg.data
    dataset = VideoClipDataset(
        records,
        mode="test",
        num_frames=d.num_frames,
        stride=d.stride,
        target_fps=d.target_fps,
        num_clips=d.num_clips,
        num_crops=d.num_crops,
        short_side=d.short_side or None,
        backend=d.backend,
        seed=cfg.train.seed,
    )
    world = dist.get_world_size() if distributed and dist.is_initialized() else 1
    loader = build_loader(
        dataset,
        batch_size=max(1, cfg.train.eval_batch_size // world),  # global batch, split over ranks
        num_workers=d.num_workers,
        shuffle=False,
        drop_last=False,
        distributed=distributed,
        seed=cfg.train.seed,
    )
    return prefetch(loader, device, build_test_transform(cfg))


if __name__ == "__main__":
    sys.exit(main())
