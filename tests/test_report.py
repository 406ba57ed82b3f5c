"""How a report is shown and kept: the JSON file, the terminal table, the confusion PNG."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nlvideo.data.video import VideoFailure
from nlvideo.engine.report import format_report, save_confusion_png, save_json
from nlvideo.metrics import EvalReport, compute_metrics

CLASSES = list("abcdef")


@pytest.fixture
def report() -> EvalReport:
    """7 of 8 videos scored (video 6 failed); class "f" has no videos -> NaN accuracy."""
    rng = np.random.default_rng(5)
    videos = np.repeat([0, 1, 2, 3, 4, 5, 7], 2)
    labels = np.array([0, 1, 2, 3, 4, 0, 1]).repeat(2)
    logits = rng.normal(size=(len(videos), len(CLASSES)))
    logits[np.arange(len(videos)), labels] += 1.0
    result = compute_metrics(logits, labels, videos, len(CLASSES))
    result.classes, result.num_videos = CLASSES, 8
    result.failed = [VideoFailure(6, "/videos/v6.mp4", "moov atom not found")]
    return result


def test_json_report_holds_metrics_failed_videos_and_null_for_undefined(report, tmp_path):
    save_json(report, tmp_path / "sub" / "eval_report.json")
    data = json.loads((tmp_path / "sub" / "eval_report.json").read_text())
    assert data["video_top1"] == pytest.approx(report.video_top1)
    assert data["num_failed"] == 1 and data["failed"][0]["path"] == "/videos/v6.mp4"
    assert data["per_class_accuracy"]["f"] is None
    assert data["per_class_accuracy"]["a"] == pytest.approx(report.per_class_accuracy[0])
    assert np.array(data["confusion"]).sum() == report.num_evaluated == 7


def test_table_shows_headline_metrics_classes_and_failed_paths(report):
    table = format_report(report)
    assert f"{100 * report.video_top1:.2f}%" in table
    assert f"{100 * report.clip_top1:.2f}%" in table
    assert all(name in table for name in CLASSES)
    assert "FAILED: 1 video(s)" in table and "/videos/v6.mp4: moov atom not found" in table


def test_confusion_png_is_an_image(report, tmp_path):
    from PIL import Image

    save_confusion_png(report, tmp_path / "confusion.png")
    with Image.open(tmp_path / "confusion.png") as img:
        assert img.format == "PNG" and min(img.size) >= 300


def test_accuracy_is_null_in_json_when_nothing_was_evaluated():
    empty = compute_metrics(np.zeros((0, 6)), np.zeros(0, int), np.zeros(0, int), 6)
    assert math.isnan(empty.video_top1) and empty.to_dict()["video_top1"] is None
