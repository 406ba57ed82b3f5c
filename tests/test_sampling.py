"""Frame-index and crop samplers: pure functions, checked against naive enumeration."""

from __future__ import annotations

import numpy as np
import pytest

from nlvideo.data.sampling import (
    crop_offsets,
    frame_step,
    resized_shape,
    train_clip_indices,
    uniform_clip_indices,
    window_indices,
)


def draw(n: int, draws: int = 400, seed: int = 0, **kw) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([train_clip_indices(n, generator=rng, **kw) for _ in range(draws)])


def test_train_window_is_num_frames_spaced_by_stride():
    clips = draw(100, num_frames=8, stride=8)
    assert clips.shape == (400, 8)
    assert (np.diff(clips, axis=1) == 8).all()


def test_train_starts_cover_exactly_the_starts_that_fit():
    n, t, stride = 40, 4, 5
    naive = {s for s in range(n) if s + stride * (t - 1) <= n - 1}
    starts = set(draw(n, num_frames=t, stride=stride)[:, 0].tolist())
    assert starts == naive


def test_train_sampling_is_reproducible_from_the_generator():
    a = draw(300, seed=7, num_frames=8, stride=8)
    b = draw(300, seed=7, num_frames=8, stride=8)
    c = draw(300, seed=8, num_frames=8, stride=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("video_fps", "target_fps", "stride", "step"),
    [(60, 30, 2, 4), (15, 30, 2, 1), (30, 30, 8, 8), (25, 30, 6, 5)],
)
def test_target_fps_resamples_the_stride(video_fps, target_fps, stride, step):
    clip = draw(
        1000, draws=1, num_frames=8, stride=stride, video_fps=video_fps, target_fps=target_fps
    )
    assert (np.diff(clip[0]) == step).all()


def test_fractional_step_floors_each_position():
    # 24 fps resampled to 30 fps with stride 1: step 0.8 source frames.
    assert window_indices(0, 0.8, 6, 100).tolist() == [0, 0, 1, 2, 3, 4]


@pytest.mark.parametrize("n", [1, 5, 57])
def test_short_video_repeats_its_last_frame(n):
    clip = draw(n, draws=5, num_frames=8, stride=8)
    naive = [min(8 * i, n - 1) for i in range(8)]
    assert (clip == naive).all()


def test_test_windows_span_the_video_uniformly():
    windows = uniform_clip_indices(300, num_frames=8, stride=8, num_clips=10)
    assert windows.shape == (10, 8)
    assert windows[0, 0] == 0 and windows[-1, -1] == 299
    starts = windows[:, 0]
    assert np.abs(np.diff(starts) - np.diff(starts).mean()).max() <= 1


def test_single_test_window_is_centred():
    window = uniform_clip_indices(101, num_frames=4, stride=10, num_clips=1)[0]
    assert window[0] == 100 - window[-1]


def test_test_windows_of_a_one_frame_video_are_all_frame_zero():
    assert (uniform_clip_indices(1, num_frames=8, stride=8, num_clips=10) == 0).all()


@pytest.mark.parametrize("bad", [{"num_frames": 0}, {"stride": 0}, {"video_frames": 0}])
def test_non_positive_arguments_raise(bad):
    kw = {"video_frames": 10, "num_frames": 4, "stride": 2} | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        train_clip_indices(kw.pop("video_frames"), generator=np.random.default_rng(), **kw)


def test_target_fps_needs_the_video_fps():
    with pytest.raises(ValueError, match="video_fps"):
        frame_step(2, None, 30)


@pytest.mark.parametrize(
    ("hw", "short", "expected"),
    [((256, 340), 256, (256, 340)), ((360, 640), 256, (256, 455)), ((96, 64), 32, (48, 32))],
)
def test_resized_shape_scales_the_short_side(hw, short, expected):
    assert resized_shape(*hw, short) == expected
    assert resized_shape(*hw, None) == hw


def test_three_crops_run_along_the_long_side():
    assert crop_offsets(256, 340, 224, 3) == [(16, 0), (16, 58), (16, 116)]
    assert crop_offsets(340, 256, 224, 3) == [(0, 16), (58, 16), (116, 16)]


def test_one_crop_is_centred():
    (y, x) = crop_offsets(256, 341, 224, 1)[0]
    assert (y, x) == (16, 59)  # ceil((341 - 224) / 2)


def test_crop_larger_than_the_frame_raises():
    with pytest.raises(ValueError, match="exceeds"):
        crop_offsets(200, 300, 224, 3)
