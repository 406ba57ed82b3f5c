"""The loader: epoch-seeded samplers, DDP shards and worker processes, with broken videos."""

from __future__ import annotations

import pytest
import torch
from conftest import BROKEN, dataset
from torch.utils.data import Dataset

from nlvideo.data.dataset import VideoItem
from nlvideo.data.loader import EpochDistributedSampler, build_loader
from nlvideo.data.transforms import TestTransform, TrainTransform, prefetch


@pytest.mark.parametrize("mode", ["train", "test"])
def test_loader_with_a_worker_survives_every_broken_file(sample_videos, broken_files, mode):
    paths = [broken_files[k] for k in BROKEN] + [sample_videos["v60"], sample_videos["bframes"]]
    ds = dataset(paths, mode=mode, short_side=40, num_clips=2)
    loader = build_loader(
        ds, batch_size=3, num_workers=1, shuffle=False, drop_last=False, timeout=60
    )
    transform = (
        TrainTransform(crop_size=32, scale=(40, 48))
        if mode == "train"
        else TestTransform(crop_size=32, scale=40, num_crops=3)
    )
    batches = list(prefetch(loader, "cpu", transform))
    clips = torch.cat([b.clips for b in batches])
    if mode == "train":
        assert clips.shape == (7, 3, 4, 32, 32)
        assert sum(b.replaced for b in batches) >= 5
        assert set(torch.cat([b.video_index for b in batches]).tolist()) <= {5, 6}
    else:
        assert clips.shape == (2 * 2 * 3, 3, 4, 32, 32)
        failed = sorted(f.video_index for b in batches for f in b.failed)
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


class _ThreadCounts(Dataset):
    """Each item's label is the intra-op thread count of the process that made it."""

    mode = "test"

    def __len__(self) -> int:
        return 2

    def set_epoch(self, epoch: int) -> None:
        pass

    def __getitem__(self, index: int) -> VideoItem:
        clips = torch.zeros(1, 3, 1, 1, 1, dtype=torch.uint8)
        return VideoItem(clips, torch.get_num_threads(), index)


def test_loader_workers_decode_with_one_intra_op_thread():
    loader = build_loader(
        _ThreadCounts(), batch_size=2, num_workers=1, shuffle=False, drop_last=False, timeout=60
    )
    assert [b.labels.tolist() for b in loader] == [[1, 1]]
