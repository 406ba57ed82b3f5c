"""Classification metrics for clips and videos, and the one report type (NumPy + scikit-learn).

Clip metrics score every view (temporal clip x spatial crop) on its own; video metrics
average the softmax of all views of a video first (the paper's multi-view testing).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from nlvideo.data.video import VideoFailure


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits, numerically stable."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-row bool: is the label among the ``k`` highest scores?

    Ties are broken towards the lower class index (a stable sort), so a row of equal scores
    counts as correct only for the first ``k`` classes. ``k`` larger than the class count
    means every row is correct.
    """
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(
            f"expected scores (N, C) and labels (N,), got {scores.shape}, {labels.shape}"
        )
    k = min(k, scores.shape[1])
    # Rank of the label = number of classes scoring strictly higher, plus ties before it.
    label_scores = scores[np.arange(len(labels)), labels][:, None]
    higher = (scores > label_scores).sum(axis=1)
    tied_before = ((scores == label_scores) & (np.arange(scores.shape[1]) < labels[:, None])).sum(
        axis=1
    )
    return higher + tied_before < k


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the top ``k`` scores (NaN for no rows)."""
    if len(labels) == 0:
        return float("nan")
    return float(topk_correct(scores, labels, k).mean())


def video_scores(
    clip_probs: np.ndarray, clip_labels: np.ndarray, video_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average clip probabilities per video.

    Args:
        clip_probs: (N, C) per-view probabilities.
        clip_labels: (N,) labels (equal for the views of one video).
        video_index: (N,) video of each view.

    Returns:
        ``(videos, probs, labels)``: sorted unique video indices (V,), mean probabilities
        (V, C) and labels (V,).
    """
    videos, inverse = np.unique(video_index, return_inverse=True)
    sums = np.zeros((len(videos), clip_probs.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, clip_probs)
    counts = np.bincount(inverse, minlength=len(videos))
    labels = np.zeros(len(videos), dtype=np.int64)
    labels[inverse] = clip_labels
    if not np.array_equal(labels[inverse], clip_labels):
        raise ValueError("views of one video carry different labels")
    return videos, sums / counts[:, None], labels


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts: rows are true classes, columns predicted classes."""
    if len(labels) == 0:
        return np.zeros((num_classes, num_classes), dtype=np.int64)
    from sklearn.metrics import confusion_matrix as counts  # lazily: ~2 s to import

    return counts(labels, preds, labels=np.arange(num_classes))


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of every class from a confusion matrix; NaN for classes with no samples."""
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(confusion) / support, np.nan)


def mean_class_accuracy(confusion: np.ndarray) -> float:
    """Mean of the per-class accuracies over the classes that have samples."""
    acc = per_class_accuracy(confusion)
    return float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")


@dataclass
class EvalReport:
    """Results of one evaluation: clip, video, per-class, confusion and the failed videos.

    Accuracies are fractions in [0, 1], NaN when nothing was scored.
    """

    clip_top1: float
    clip_top5: float
    video_top1: float  # over the evaluated videos (failed ones are listed in ``failed``)
    video_top5: float
    mean_class_accuracy: float
    per_class_accuracy: np.ndarray  # (C,), NaN where a class has no videos
    confusion: np.ndarray  # (C, C) video-level counts; rows true, columns predicted
    videos: np.ndarray  # (V,) evaluated video indices, sorted
    video_probs: np.ndarray  # (V, C) view-averaged probabilities
    video_labels: np.ndarray  # (V,)
    num_clips: int  # views scored
    classes: list[str] = field(default_factory=list)
    num_videos: int = 0  # videos asked for (the records)
    failed: list[VideoFailure] = field(default_factory=list)  # videos not evaluated

    @property
    def num_evaluated(self) -> int:
        """Videos with at least one view scored."""
        return len(self.videos)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (NaN becomes None); per-class accuracy keyed by class name."""
        names = self.classes or [str(i) for i in range(len(self.per_class_accuracy))]
        return {
            "clip_top1": _json_float(self.clip_top1),
            "clip_top5": _json_float(self.clip_top5),
            "video_top1": _json_float(self.video_top1),
            "video_top5": _json_float(self.video_top5),
            "mean_class_accuracy": _json_float(self.mean_class_accuracy),
            "per_class_accuracy": {
                name: _json_float(acc)
                for name, acc in zip(names, self.per_class_accuracy, strict=True)
            },
            "confusion": self.confusion.astype(int).tolist(),
            "num_videos": self.num_videos,
            "num_evaluated": self.num_evaluated,
            "num_failed": len(self.failed),
            "failed": [asdict(f) for f in self.failed],
            "classes": list(self.classes),
            "num_clips": self.num_clips,
        }


def _json_float(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def compute_metrics(
    clip_logits: np.ndarray,
    clip_labels: np.ndarray,
    video_index: np.ndarray,
    num_classes: int,
) -> EvalReport:
    """All metrics from per-view logits (the report's classes and failures left empty).

    Args:
        clip_logits: (N, C) logits of every view.
        clip_labels: (N,) true class of every view.
        video_index: (N,) video each view belongs to.
        num_classes: C (classes absent from the labels still get a confusion row).
    """
    clip_logits = np.asarray(clip_logits, dtype=np.float64)
    clip_labels = np.asarray(clip_labels, dtype=np.int64)
    video_index = np.asarray(video_index, dtype=np.int64)
    if clip_logits.ndim != 2 or clip_logits.shape[1] != num_classes:
        raise ValueError(f"expected logits (N, {num_classes}), got {clip_logits.shape}")
    probs = softmax(clip_logits) if len(clip_logits) else clip_logits
    videos, vprobs, vlabels = video_scores(probs, clip_labels, video_index)
    confusion = confusion_matrix(vlabels, vprobs.argmax(axis=1), num_classes)
    return EvalReport(
        clip_top1=topk_accuracy(probs, clip_labels, 1),
        clip_top5=topk_accuracy(probs, clip_labels, 5),
        video_top1=topk_accuracy(vprobs, vlabels, 1),
        video_top5=topk_accuracy(vprobs, vlabels, 5),
        mean_class_accuracy=mean_class_accuracy(confusion),
        per_class_accuracy=per_class_accuracy(confusion),
        confusion=confusion,
        videos=videos,
        video_probs=vprobs,
        video_labels=vlabels,
        num_clips=len(clip_labels),
    )


def format_percent(value: float | None, digits: int = 2) -> str:
    """An accuracy for people to read; ``None`` or NaN (nothing evaluated) prints as n/a."""
    return "n/a" if value is None or value != value else f"{100 * value:.{digits}f}%"
