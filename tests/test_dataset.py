"""The map-style dataset and its collation, including broken videos."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from conftest import BROKEN, clip_indices, dataset

from nlvideo.data.dataset import collate_items
from nlvideo.data.sampling import uniform_clip_indices
from nlvideo.data.transforms import TestTransform


def window_ok(indices: list[int], stride: int, n: int) -> bool:
    naive = [min(indices[0] + stride * i, n - 1) for i in range(len(indices))]
    return indices == naive and 0 <= indices[0] < n


# ----------------------------------------------------------------------------- items
@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_train_item_is_one_uint8_window_with_label_and_index(sample_videos, backend):
    ds = dataset([sample_videos["v60"], sample_videos["bframes"]], backend=backend)
    item = ds[1]
    assert item.clips.shape == (1, 3, 4, 64, 96) and item.clips.dtype == torch.uint8
    assert (item.label, item.index, item.replaced) == (1, 1, 0)
    assert window_ok(clip_indices(item.clips[0].numpy()), 3, 60)


def test_items_are_reproducible_and_change_with_the_epoch(sample_videos):
    ds = dataset([sample_videos["v60"]], num_frames=2)
    first = [clip_indices(ds[0].clips[0].numpy()) for _ in range(2)]
    assert first[0] == first[1]
    starts = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        starts.add(clip_indices(ds[0].clips[0].numpy())[0])
    assert len(starts) > 1


def test_repeated_sampling_gives_several_windows_from_one_video(sample_videos):
    ds = dataset([sample_videos["v60"]], repeat_clips=3)
    clips = ds[0].clips
    assert clips.shape == (3, 3, 4, 64, 96)
    assert all(window_ok(clip_indices(c.numpy()), 3, 60) for c in clips)
    assert ds.clips_per_video == 3


def test_target_fps_resamples_each_video(sample_videos):
    # v45 is 15 fps: stride 2 at 30 fps is every source frame.
    ds = dataset([sample_videos["v45"]], num_frames=6, stride=2, target_fps=30)
    assert np.diff(clip_indices(ds[0].clips[0].numpy())).tolist() == [1] * 5


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_test_item_holds_all_windows_of_one_video(sample_videos, backend):
    ds = dataset([sample_videos["v60"]], mode="test", num_clips=5, backend=backend)
    item = ds[0]
    expected = uniform_clip_indices(60, num_frames=4, stride=3, num_clips=5)
    assert item.clips.shape == (5, 3, 4, 64, 96)
    assert [clip_indices(c.numpy()) for c in item.clips] == expected.tolist()
    assert ds.clips_per_video == 5


@pytest.mark.parametrize(("video", "n"), [("one", 1), ("five", 5)])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_short_videos_repeat_their_last_frame(sample_videos, video, n, mode):
    clips = dataset([sample_videos[video]], mode=mode, num_frames=8, stride=2)[0].clips
    for clip in clips:
        assert clip_indices(clip.numpy()) == [min(2 * i, n - 1) for i in range(8)]


def test_decode_time_resize_applies_to_items(sample_videos):
    ds = dataset([sample_videos["v60"], sample_videos["portrait"]], mode="test", short_side=40)
    assert ds[0].clips.shape[-2:] == (40, 60) and ds[1].clips.shape[-2:] == (60, 40)


# ----------------------------------------------------------------------------- broken input
@pytest.mark.parametrize("kind", BROKEN)
def test_broken_video_is_replaced_in_training(sample_videos, broken_files, kind, caplog):
    paths = [broken_files[kind], sample_videos["v60"], sample_videos["five"]]
    with caplog.at_level(logging.WARNING, logger="nlvideo.data.dataset"):
        item = dataset(paths)[0]
    assert item.index in (1, 2) and item.label == item.index
    assert item.replaced >= 1 and item.clips.shape[:3] == (1, 3, 4)
    assert str(broken_files[kind]) in caplog.text


@pytest.mark.parametrize("kind", BROKEN)
def test_broken_video_is_reported_as_failed_in_evaluation(broken_files, kind):
    item = dataset([broken_files[kind]], mode="test")[0]
    assert item.clips.shape == (0, 3, 4, 1, 1)
    failure = item.failure
    assert (failure.video_index, failure.path) == (0, str(broken_files[kind])) and failure.reason


def test_training_gives_up_after_max_retries(broken_files):
    ds = dataset([broken_files[k] for k in BROKEN], max_retries=3)
    with pytest.raises(RuntimeError, match="4 videos in a row could not be read"):
        ds[0]


# ----------------------------------------------------------------------------- collation
def test_collate_concatenates_clips_and_lists_failures(sample_videos, broken_files):
    ds = dataset(
        [sample_videos["v60"], broken_files["text"], sample_videos["bframes"]], mode="test"
    )
    batch = collate_items([ds[0], ds[1], ds[2]])
    assert batch.clips.shape == (6, 3, 4, 64, 96)
    assert batch.labels.tolist() == [0, 0, 0, 2, 2, 2]
    assert batch.video_index.tolist() == [0, 0, 0, 2, 2, 2]
    assert batch.view_index.tolist() == [0, 1, 2, 0, 1, 2]
    assert [(f.video_index, f.path) for f in batch.failed] == [(1, str(broken_files["text"]))]


def test_collate_keeps_mixed_sizes_as_a_list_the_transform_accepts(sample_videos):
    ds = dataset([sample_videos["v60"], sample_videos["portrait"]], mode="test", num_clips=2)
    batch = collate_items([ds[0], ds[1]])
    assert isinstance(batch.clips, list) and [c.shape[-1] for c in batch.clips] == [96, 64]
    out = TestTransform(crop_size=32, scale=48, num_crops=3)(batch.clips)
    assert out.shape == (12, 3, 4, 32, 32)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"mode": "val"}, "mode"),
        ({"backend": "opencv"}, "backend"),
        ({"num_frames": 0}, "num_frames"),
    ],
)
def test_bad_dataset_arguments_raise(sample_videos, kw, match):
    with pytest.raises(ValueError, match=match):
        dataset([sample_videos["v60"]], **kw)
