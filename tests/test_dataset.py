"""The map-style dataset, collation, samplers and loader, including broken videos."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from conftest import clip_indices

from nlvideo.data.annotations import VideoRecord
from nlvideo.data.dataset import (
    EpochDistributedSampler,
    VideoClipDataset,
    build_loader,
    collate_items,
    worker_init,
)
from nlvideo.data.gpu import DeviceTransform, prefetch
from nlvideo.data.sampling import uniform_clip_indices

BROKEN = ["missing", "zero", "truncated", "text", "audio_only"]


def records_for(paths) -> list[VideoRecord]:
    return [VideoRecord(str(p), i, f"v{i}") for i, p in enumerate(paths)]


def dataset(paths, mode="train", **kw) -> VideoClipDataset:
    kw = {"num_frames": 4, "stride": 3, "short_side": None, "num_clips": 3} | kw
    return VideoClipDataset(records_for(paths), mode=mode, **kw)


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
    assert ds.views_per_video == 3


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
    assert ds.views_per_video == 15


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
    index, path, reason = item.failure
    assert (index, path) == (0, str(broken_files[kind])) and reason


def test_training_gives_up_after_max_retries(broken_files):
    ds = dataset([broken_files[k] for k in BROKEN], max_retries=3)
    with pytest.raises(RuntimeError, match="4 videos in a row could not be read"):
        ds[0]


# ----------------------------------------------------------------------------- collation / loader
def test_collate_concatenates_clips_and_lists_failures(sample_videos, broken_files):
    ds = dataset(
        [sample_videos["v60"], broken_files["text"], sample_videos["bframes"]], mode="test"
    )
    batch = collate_items([ds[0], ds[1], ds[2]])
    assert batch.clips.shape == (6, 3, 4, 64, 96)
    assert batch.labels.tolist() == [0, 0, 0, 2, 2, 2]
    assert batch.video_index.tolist() == [0, 0, 0, 2, 2, 2]
    assert batch.clip_index.tolist() == [0, 1, 2, 0, 1, 2]
    assert [f[:2] for f in batch.failed] == [(1, str(broken_files["text"]))]


def test_collate_keeps_mixed_sizes_as_a_list_the_transform_accepts(sample_videos):
    ds = dataset([sample_videos["v60"], sample_videos["portrait"]], mode="test", num_clips=2)
    batch = collate_items([ds[0], ds[1]])
    assert isinstance(batch.clips, list) and [c.shape[-1] for c in batch.clips] == [96, 64]
    out = DeviceTransform(mode="test", crop_size=32, test_scale=48)(batch.clips)
    assert out.shape == (12, 3, 4, 32, 32)


@pytest.mark.parametrize("mode", ["train", "test"])
def test_loader_with_a_worker_survives_every_broken_file(sample_videos, broken_files, mode):
    paths = [broken_files[k] for k in BROKEN] + [sample_videos["v60"], sample_videos["bframes"]]
    ds = dataset(paths, mode=mode, short_side=40, num_clips=2)
    loader = build_loader(
        ds, batch_size=3, num_workers=1, shuffle=False, drop_last=False, timeout=60
    )
    transform = DeviceTransform(mode=mode, crop_size=32, train_scale=(40, 48), test_scale=40)
    batches = list(prefetch(loader, "cpu", transform))
    clips = torch.cat([b.clips for b in batches])
    if mode == "train":
        assert clips.shape == (7, 3, 4, 32, 32)
        assert sum(b.replaced for b in batches) >= 5
        assert set(torch.cat([b.video_index for b in batches]).tolist()) <= {5, 6}
    else:
        assert clips.shape == (2 * 2 * 3, 3, 4, 32, 32)
        failed = sorted(f[0] for b in batches for f in b.failed)
        assert failed == [0, 1, 2, 3, 4]
    assert torch.isfinite(clips).all()


def test_sampler_set_epoch_reshuffles_and_moves_the_windows(sample_videos):
    ds = dataset([sample_videos["v60"]] * 8)
    loader = build_loader(ds, batch_size=2, num_workers=0, shuffle=True, drop_last=False, seed=1)
    orders = []
    for epoch in range(3):
        loader.sampler.set_epoch(epoch)
        assert ds.epoch == epoch
        orders.append(list(loader.sampler))
    assert all(sorted(o) == list(range(8)) for o in orders) and orders[0] != orders[1]


def test_distributed_eval_shards_cover_every_video_once(sample_videos):
    ds = dataset([sample_videos["v60"]] * 7, mode="test")
    shards = [
        list(EpochDistributedSampler(ds, num_replicas=3, rank=r, shuffle=False, pad=False))
        for r in range(3)
    ]
    assert sorted(i for s in shards for i in s) == list(range(7))
    train = [
        list(EpochDistributedSampler(ds, num_replicas=3, rank=r, shuffle=True, seed=0))
        for r in range(3)
    ]
    assert len({len(s) for s in train}) == 1 and {i for s in train for i in s} == set(range(7))


def test_worker_init_sets_one_thread():
    before = torch.get_num_threads()
    try:
        worker_init(0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"mode": "val"}, "mode"),
        ({"backend": "opencv"}, "backend"),
        ({"num_crops": 2}, "num_crops"),
        ({"num_frames": 0}, "num_frames"),
    ],
)
def test_bad_dataset_arguments_raise(sample_videos, kw, match):
    with pytest.raises(ValueError, match=match):
        dataset([sample_videos["v60"]], **kw)
