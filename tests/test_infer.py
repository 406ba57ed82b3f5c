"""nlvideo-infer and the Predictor: top-k per video, timelines, any size or length, broken files."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from conftest import TINY_TEST_VIEWS, make_video, write_checkpoint

from nlvideo.cli.infer import main
from nlvideo.pipeline import build_predictor

CLASSES = ["alpha", "bravo", "charlie", "delta", "echo"]  # names only the checkpoint knows
CLIPS = 3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("infer") / "best.pt"
    views = [*TINY_TEST_VIEWS, f"data.num_clips={CLIPS}", "data.backend=pyav"]
    return write_checkpoint(path, CLASSES, views)


def _moving_bar(i: int, height: int, width: int) -> np.ndarray:
    image = np.full((height, width, 3), 40, np.uint8)
    x = (i * width // 20) % width
    image[:, x : x + max(width // 8, 2)] = (220, 120, 30)
    return image


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("infer_videos")
    broken = root / "broken.mp4"
    broken.write_text("this is not a video\n")
    return {
        "hd": make_video(root / "hd.mp4", 12, (1280, 720), 25, frame_fn=_moving_bar),
        "qcif": make_video(root / "qcif.mp4", 60, (176, 144), 30, frame_fn=_moving_bar),
        "two_seconds": make_video(root / "two_s.mp4", 50, (96, 64), 25, frame_fn=_moving_bar),
        "three_frames": make_video(root / "three.mp4", 3, (64, 48), 25, frame_fn=_moving_bar),
        "long": make_video(root / "long.mp4", 150, (64, 48), 25, frame_fn=_moving_bar),
        "broken": broken,
        "missing": root / "missing.mp4",
    }


def _run_json(capsys, args) -> tuple[int, list[dict]]:
    rc = main([*map(str, args), "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_every_readable_video_gets_topk_probabilities_and_broken_ones_fail(
    checkpoint, videos, capsys
):
    names = ["hd", "broken", "qcif", "missing", "two_seconds", "three_frames"]
    rc, out = _run_json(
        capsys, [*(videos[n] for n in names), "--checkpoint", checkpoint, "--topk", 3]
    )
    assert rc == 1
    assert [r["path"] for r in out] == [str(videos[n]) for n in names]
    assert [r["ok"] for r in out] == [True, False, True, False, True, True]
    for r in out:
        if r["ok"]:
            probs = [t["prob"] for t in r["top"]]
            assert len(probs) == 3 and probs == sorted(probs, reverse=True)
            assert {t["class"] for t in r["top"]} <= set(CLASSES)
            assert r["num_views"] == CLIPS
    assert "file not found" in out[3]["error"]
    assert out[1]["error"]


def test_unreadable_file_is_named_with_its_reason_on_stderr(checkpoint, videos, capsys):
    rc = main([str(videos["qcif"]), str(videos["missing"]), "--checkpoint", str(checkpoint)])
    captured = capsys.readouterr()
    assert rc == 1
    assert f"{videos['missing']}: file not found" in captured.err
    assert str(videos["qcif"]) in captured.out and "alpha" in captured.out


def test_exit_status_is_zero_when_every_file_is_read(checkpoint, videos, capsys):
    assert main([str(videos["two_seconds"]), "--checkpoint", str(checkpoint)]) == 0


def test_bad_checkpoint_is_a_usage_error(tmp_path, videos, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert main([str(videos["qcif"]), "--checkpoint", str(bad)]) == 2
    assert "bad.pt" in capsys.readouterr().err


def test_per_window_timeline_covers_a_long_video(checkpoint, videos, capsys):
    rc, out = _run_json(
        capsys,
        [videos["long"], "--checkpoint", checkpoint, "--per-window", "--window-step", "1.5"],
    )
    assert rc == 0
    windows = out[0]["windows"]
    starts = [w["start_s"] for w in windows]
    span = (4 - 1) * 2 + 1  # frames of one 4-frame clip at stride 2
    assert starts[:4] == pytest.approx([0.0, 1.52, 3.0, 4.52])  # every 1.5 s, on frames
    assert windows[-1]["end_s"] == pytest.approx(150 / 25) and starts == sorted(starts)
    assert all(w["end_s"] - w["start_s"] == pytest.approx(span / 25) for w in windows)


def test_window_mean_is_the_overall_prediction(checkpoint, videos):
    predictor = build_predictor(checkpoint, device="cpu")
    pred = predictor.predict_windows(videos["long"], window_step_s=2.0)
    assert len(pred.windows) >= 3
    np.testing.assert_allclose(pred.probs, np.mean([w.probs for w in pred.windows], axis=0))
    for w in pred.windows:
        assert w.probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_per_window_reports_broken_files_too(checkpoint, videos, capsys):
    rc, out = _run_json(
        capsys,
        [videos["broken"], videos["three_frames"], "--checkpoint", checkpoint, "--per-window"],
    )
    assert rc == 1 and not out[0]["ok"] and len(out[1]["windows"]) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_prediction_matches_cpu(checkpoint, videos):
    cpu = build_predictor(checkpoint, device="cpu").predict(videos["hd"])
    gpu = build_predictor(checkpoint, device="cuda").predict(videos["hd"])
    np.testing.assert_allclose(gpu.probs, cpu.probs, atol=1e-4)


def test_a_video_shorter_than_one_clip_says_its_frames_are_repeated(checkpoint, videos, capsys):
    rc, out = _run_json(
        capsys, [videos["three_frames"], videos["qcif"], "--checkpoint", checkpoint]
    )
    assert rc == 0
    span = (4 - 1) * 2 + 1  # 4 frames at stride 2
    assert (out[0]["short"], out[0]["num_frames"], out[0]["clip_frames"]) == (True, 3, span)
    assert out[1]["short"] is False
    assert main([str(videos["three_frames"]), "--checkpoint", str(checkpoint)]) == 0
    assert "short video: 3 frames, a clip needs 7; its last frame is repeated" in (
        capsys.readouterr().out
    )


def test_default_windows_tile_the_video_without_gaps(checkpoint, videos):
    predictor = build_predictor(checkpoint, device="cpu")
    pred = predictor.predict_windows(videos["long"])  # 150 frames at 25 fps, clips of 7
    bounds = [(round(w.start_s * 25), round(w.end_s * 25)) for w in pred.windows]
    assert bounds[0][0] == 0 and bounds[-1][1] == 150
    for (_, end), (start, _) in itertools.pairwise(bounds):
        assert start <= end  # each window starts at or before the previous one's end
    assert [s for s, _ in bounds[:-1]] == list(range(0, 7 * len(bounds[:-1]), 7))


def test_overall_equals_the_plain_prediction_when_windows_are_its_clips(checkpoint, tmp_path):
    # 21 frames, clips of 7: the 3 uniform clips start at 0, 7, 14, and so do the tiles.
    video = make_video(tmp_path / "v.mp4", 21, (64, 48), 25, frame_fn=_moving_bar)
    predictor = build_predictor(checkpoint, device="cpu")
    windows = predictor.predict_windows(video)
    plain = predictor.predict(video)
    assert [round(w.start_s * 25) for w in windows.windows] == [0, 7, 14]
    assert windows.num_views == plain.num_views == 3
    np.testing.assert_allclose(windows.probs, plain.probs, rtol=1e-5, atol=1e-6)
