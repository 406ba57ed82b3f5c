"""Multi-view evaluation: score K temporal clips x C spatial crops per video, then aggregate.

``evaluate`` runs a model over device batches (any number of views per video), gathers the
per-view logits across DDP ranks without the duplicates DistributedSampler pads in, and
returns an ``EvalReport``. Videos that failed to decode are listed and counted, never
silently dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from nlvideo.data.annotations import VideoRecord
from nlvideo.data.transforms import DeviceBatch
from nlvideo.data.video import VideoFailure
from nlvideo.engine.precision import autocast
from nlvideo.metrics import EvalReport, compute_metrics

logger = logging.getLogger(__name__)

_HOST_EVERY = 16  # batches of logits kept on the device before one copy to the host


def _gather(local: dict[str, Any], distributed: bool) -> list[dict[str, Any]]:
    if not (distributed and dist.is_available() and dist.is_initialized()):
        return [local]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, local)
    return out


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: Iterable[DeviceBatch],
    *,
    records: Sequence[VideoRecord],
    classes: Sequence[str],
    amp: str = "none",
    distributed: bool = False,
    max_views_per_forward: int | None = None,
) -> EvalReport:
    """Score every view of every video and aggregate clip- and video-level metrics.

    Args:
        model: Maps (B, 3, T, H, W) clips to (B, num_classes) logits; put in eval mode for the
            call and restored to its previous mode afterwards.
        batches: Device batches, e.g. from ``nlvideo.data.transforms.prefetch``.
        records: All videos of the evaluation (VideoRecord list; all ranks' videos under DDP).
        classes: Class names, indexed by label.
        amp: "none", "bf16" or "fp16" autocast for the forward pass.
        distributed: Gather results from all ranks (every rank gets the same report).
        max_views_per_forward: Split big batches into chunks of this many views (memory).
    """
    was_training = model.training
    model.eval()
    keys = ("logits", "labels", "video_index", "view_index")
    pending: dict[str, list[torch.Tensor]] = {k: [] for k in keys}  # on the device
    host: dict[str, list[np.ndarray]] = {
        "logits": [np.zeros((0, len(classes)), np.float32)],
        **{k: [np.zeros(0, np.int64)] for k in keys[1:]},
    }
    failed: dict[int, VideoFailure] = {}

    def flush() -> None:  # one device sync per group of batches, not one per batch
        for k in keys:
            if pending[k]:
                host[k].append(torch.cat(pending[k]).cpu().numpy())
                pending[k].clear()

    try:
        for batch in batches:
            for failure in batch.failed:
                failed.setdefault(failure.video_index, failure)
            clips = batch.clips
            if clips.shape[0] == 0:
                continue
            step = max_views_per_forward or clips.shape[0]
            with autocast(clips.device, amp):
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
    parts: list[dict[str, Any]], *, records: Sequence[VideoRecord], classes: Sequence[str]
) -> EvalReport:
    """Merge per-rank results, drop repeated (video, view) pairs, compute metrics."""
    logits = np.concatenate([p["logits"] for p in parts])
    labels = np.concatenate([p["labels"] for p in parts]).astype(np.int64)
    video = np.concatenate([p["video_index"] for p in parts]).astype(np.int64)
    view = np.concatenate([p["view_index"] for p in parts]).astype(np.int64)
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
    report = compute_metrics(logits, labels, video, len(classes))

    evaluated = set(report.videos.tolist())
    failed: dict[int, VideoFailure] = {}
    for p in parts:
        for idx, failure in p["failed"].items():
            failed.setdefault(idx, failure)
    failures = [f for idx, f in failed.items() if idx not in evaluated]
    failures += [
        VideoFailure(idx, str(records[idx].path), "not evaluated: no views scored, no error")
        for idx in sorted(set(range(len(records))) - evaluated - set(failed))
    ]
    failures.sort(key=lambda f: f.video_index)
    if failures:
        logger.warning(
            "%d of %d videos could not be evaluated, e.g. %s: %s",
            len(failures),
            len(records),
            failures[0].path,
            failures[0].reason,
        )
    report.classes, report.num_videos, report.failed = list(classes), len(records), failures
    return report
