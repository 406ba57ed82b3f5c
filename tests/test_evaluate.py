"""evaluate(): multi-view aggregation, failed videos, DDP de-duplication, mixed precision."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sklearn.metrics import accuracy_score, balanced_accuracy_score, top_k_accuracy_score
from torch import nn

from nlvideo.data.annotations import VideoRecord
from nlvideo.data.transforms import DeviceBatch
from nlvideo.data.video import VideoFailure
from nlvideo.engine.evaluate import evaluate
from nlvideo.metrics import EvalReport

NUM_CLASSES = 6
NUM_VIEWS = 4


class LogitsInClip(nn.Module):
    """Returns the logits written into the clip's first pixels: lets tests choose every output."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))  # a parameter, so it has a training mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, 0, :NUM_CLASSES] * self.scale


def _records(n: int) -> list[VideoRecord]:
    return [
        VideoRecord(path=f"/videos/v{i}.mp4", label=i % NUM_CLASSES, video_id=f"v{i}")
        for i in range(n)
    ]


def _view_logits(n_videos: int, seed: int = 0) -> np.ndarray:
    """(V, NUM_VIEWS, C) logits; views of a video disagree, so clip and video accuracy differ."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.0, (n_videos, NUM_VIEWS, NUM_CLASSES))
    for v in range(n_videos):
        logits[v, :, v % NUM_CLASSES] += rng.uniform(0.0, 1.5)
    return logits


def _batches(
    logits: np.ndarray, records, video_groups, *, failed=(), repeat=()
) -> list[DeviceBatch]:
    """One DeviceBatch per group of videos; ``failed`` videos have no clips; ``repeat`` adds
    a batch that repeats those videos (as DistributedSampler padding does)."""
    out = []
    for group in [*video_groups, *([list(repeat)] if repeat else [])]:
        ok = [v for v in group if v not in failed]
        clips = torch.zeros(len(ok) * NUM_VIEWS, 3, 2, 1, 8)
        for i, v in enumerate(ok):
            clips[i * NUM_VIEWS : (i + 1) * NUM_VIEWS, 0, 0, 0, :NUM_CLASSES] = torch.from_numpy(
                logits[v]
            ).float()
        out.append(
            DeviceBatch(
                clips=clips,
                labels=torch.tensor([records[v].label for v in ok for _ in range(NUM_VIEWS)]),
                video_index=torch.tensor([v for v in ok for _ in range(NUM_VIEWS)]),
                view_index=torch.tensor([k for _ in ok for k in range(NUM_VIEWS)]),
                failed=[
                    VideoFailure(v, records[v].path, "moov atom not found")
                    for v in group
                    if v in failed
                ],
                replaced=0,
            )
        )
    return out


def _reference(logits: np.ndarray, records, videos) -> dict[str, float]:
    """scikit-learn on naive per-video averages of the view softmax."""
    flat = logits[videos].reshape(-1, NUM_CLASSES)
    clip_labels = np.repeat([records[v].label for v in videos], NUM_VIEWS)
    probs = np.exp(logits[videos]) / np.exp(logits[videos]).sum(-1, keepdims=True)
    vprobs = probs.mean(axis=1)
    vlabels = np.array([records[v].label for v in videos])
    labels = np.arange(NUM_CLASSES)
    return {
        "clip_top1": accuracy_score(clip_labels, flat.argmax(1)),
        "clip_top5": top_k_accuracy_score(clip_labels, flat, k=5, labels=labels),
        "video_top1": accuracy_score(vlabels, vprobs.argmax(1)),
        "video_top5": top_k_accuracy_score(vlabels, vprobs, k=5, labels=labels),
        "mean_class_accuracy": balanced_accuracy_score(vlabels, vprobs.argmax(1)),
    }


def _assert_matches(report: EvalReport, ref: dict[str, float]) -> None:
    for key, value in ref.items():
        assert getattr(report, key) == pytest.approx(value), key


# --------------------------------------------------------------------------- evaluate


def test_metrics_match_sklearn_on_view_averaged_softmax():
    records, logits = _records(12), _view_logits(12)
    batches = _batches(logits, records, [[0, 1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11]])
    report = evaluate(LogitsInClip(), batches, records=records, classes=[str(i) for i in range(6)])
    ref = _reference(logits, records, list(range(12)))
    _assert_matches(report, ref)
    assert ref["clip_top1"] != pytest.approx(ref["video_top1"])  # the data tells them apart
    assert report.num_videos == report.num_evaluated == 12 and report.failed == []
    assert report.num_clips == 12 * NUM_VIEWS


def test_report_does_not_depend_on_how_views_are_batched(monkeypatch):
    import nlvideo.engine.evaluate

    # exercise the grouped host copies
    monkeypatch.setattr(nlvideo.engine.evaluate, "_HOST_EVERY", 3)
    records, logits = _records(10), _view_logits(10, seed=6)
    one = evaluate(
        LogitsInClip(),
        _batches(logits, records, [list(range(10))]),
        records=records,
        classes=list("abcdef"),
    )
    many = evaluate(
        LogitsInClip(),
        _batches(logits, records, [[v] for v in range(10)]),
        records=records,
        classes=list("abcdef"),
    )
    assert many.to_dict() == one.to_dict()


def test_failed_video_is_listed_counted_and_left_out_of_accuracy():
    records, logits = _records(12), _view_logits(12, seed=1)
    batches = _batches(logits, records, [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]], failed={7})
    report = evaluate(LogitsInClip(), batches, records=records, classes=list("abcdef"))
    assert report.failed == [VideoFailure(7, "/videos/v7.mp4", "moov atom not found")]
    assert (report.num_videos, report.num_evaluated) == (12, 11)
    _assert_matches(report, _reference(logits, records, [v for v in range(12) if v != 7]))


def test_video_without_views_or_error_is_reported_as_not_evaluated():
    records, logits = _records(6), _view_logits(6)
    batches = _batches(logits, records, [[0, 1, 2, 4, 5]])
    report = evaluate(LogitsInClip(), batches, records=records, classes=list("abcdef"))
    assert [f.video_index for f in report.failed] == [3]
    assert "not evaluated" in report.failed[0].reason


def test_repeated_views_from_sampler_padding_are_counted_once():
    records, logits = _records(9), _view_logits(9, seed=2)
    plain = evaluate(
        LogitsInClip(),
        _batches(logits, records, [[0, 1, 2, 3], [4, 5, 6, 7, 8]]),
        records=records,
        classes=list("abcdef"),
    )
    padded = evaluate(
        LogitsInClip(),
        _batches(logits, records, [[0, 1, 2, 3], [4, 5, 6, 7, 8]], repeat=[0, 1]),
        records=records,
        classes=list("abcdef"),
    )
    assert padded.to_dict() == plain.to_dict()


def test_model_mode_is_restored_and_chunked_forward_gives_the_same_report():
    records, logits = _records(6), _view_logits(6, seed=3)
    model = LogitsInClip().train()
    whole = evaluate(
        model,
        _batches(logits, records, [[0, 1, 2, 3, 4, 5]]),
        records=records,
        classes=list("abcdef"),
    )
    chunked = evaluate(
        model,
        _batches(logits, records, [[0, 1, 2, 3, 4, 5]]),
        records=records,
        classes=list("abcdef"),
        max_views_per_forward=5,
    )
    assert model.training
    assert chunked.to_dict() == whole.to_dict()


def test_bf16_autocast_scores_a_real_network_like_float32():
    from nlvideo.models import build_model

    torch.manual_seed(0)
    model = build_model("c2d_tiny", num_classes=NUM_CLASSES)
    records = _records(3)
    gen = torch.Generator().manual_seed(0)

    def batches() -> list[DeviceBatch]:
        return [
            DeviceBatch(
                clips=torch.randn(6, 3, 2, 16, 16, generator=gen.manual_seed(0)),
                labels=torch.tensor([0, 0, 1, 1, 2, 2]),
                video_index=torch.tensor([0, 0, 1, 1, 2, 2]),
                view_index=torch.tensor([0, 1, 0, 1, 0, 1]),
            )
        ]

    fp32 = evaluate(model, batches(), records=records, classes=list("abcdef"))
    bf16 = evaluate(model, batches(), records=records, classes=list("abcdef"), amp="bf16")
    assert bf16.num_evaluated == 3
    np.testing.assert_allclose(bf16.video_probs, fp32.video_probs, atol=0.02)
    assert not np.array_equal(bf16.video_probs, fp32.video_probs)  # autocast did apply


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        records, logits = _records(7), _view_logits(7, seed=4)
        # DistributedSampler-like split of 7 videos over 2 ranks: rank 1 gets video 0 again.
        mine = [[0, 2, 4, 6]] if rank == 0 else [[1, 3, 5], [0]]
        report = evaluate(
            LogitsInClip(),
            _batches(logits, records, mine, failed={5}),
            records=records,
            classes=list("abcdef"),
            distributed=True,
        )
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(report.to_dict()))
    finally:
        dist.destroy_process_group()


def test_distributed_results_are_gathered_without_padding_duplicates(tmp_path):
    mp.start_processes(
        _ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="fork"
    )
    records, logits = _records(7), _view_logits(7, seed=4)
    single = evaluate(
        LogitsInClip(),
        _batches(logits, records, [[0, 1, 2, 3, 4, 5, 6]], failed={5}),
        records=records,
        classes=list("abcdef"),
    )
    for rank in range(2):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == json.loads(
            json.dumps(single.to_dict())
        )


def test_accuracy_is_nan_not_zero_when_nothing_was_evaluated():
    records = _records(2)
    batches = _batches(_view_logits(2), records, [[0, 1]], failed={0, 1})
    report = evaluate(LogitsInClip(), batches, records=records, classes=list("abcdef"))
    assert math.isnan(report.video_top1) and report.to_dict()["video_top1"] is None
    assert len(report.failed) == 2
