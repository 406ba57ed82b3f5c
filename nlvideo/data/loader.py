"""The DataLoader of video batches: epoch-seeded samplers (single process and DDP).

`set_epoch` on the sampler also moves the dataset's random windows on, so one call per epoch
changes both the order and the clips, reproducibly. `set_start(n)` (after `set_epoch`) skips
the epoch's first n samples of this rank: a resumed run starts where its checkpoint stopped.
"""

from __future__ import annotations

import itertools
import signal

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from nlvideo.data.dataset import VideoClipDataset, collate_items


class EpochSampler(Sampler[int]):
    """Shuffles with (seed, epoch); `set_epoch` also moves the dataset's windows on."""

    def __init__(self, dataset: VideoClipDataset, *, shuffle: bool, seed: int = 0):
        self.dataset, self.shuffle, self.seed, self.epoch = dataset, shuffle, seed, 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.start = epoch, 0
        self.dataset.set_epoch(epoch)

    def set_start(self, start: int) -> None:
        self.start = start

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.start, len(self.dataset)))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(len(self.dataset), generator=generator).tolist()[self.start :])


class EpochDistributedSampler(DistributedSampler):
    """`DistributedSampler` whose `set_epoch` also reaches the dataset.

    With `pad=False` (evaluation) each rank takes every `num_replicas`-th index and nothing is
    repeated, so shards differ in length by at most one and no video is counted twice.
    """

    def __init__(self, dataset: VideoClipDataset, *, pad: bool = True, **kwargs):
        super().__init__(dataset, **kwargs)
        self.pad, self.start = pad, 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        self.start = 0

    def set_start(self, start: int) -> None:
        self.start = start

    def __iter__(self):
        if self.pad:
            return itertools.islice(super().__iter__(), self.start, None)
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        if self.pad:
            return super().__len__()
        return len(range(self.rank, len(self.dataset), self.num_replicas))


def worker_init(worker_id: int) -> None:
    """One intra-op thread per loader worker (decoding is parallel across workers).

    Workers ignore SIGINT / SIGTERM: Ctrl-C (or a scheduler) signals the whole process group,
    and the main process must be able to finish its step and save; it ends the workers itself.
    """
    torch.set_num_threads(1)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def build_loader(
    dataset: VideoClipDataset,
    *,
    batch_size: int,
    num_workers: int,
    shuffle: bool,
    drop_last: bool,
    distributed: bool = False,
    seed: int = 0,
    pin_memory: bool | None = None,
    timeout: float = 0.0,
    prefetch_factor: int = 2,
) -> DataLoader:
    """DataLoader of `ClipBatch`es: pinned (with CUDA), seeded, `loader.sampler.set_epoch(e)`.

    Args:
        dataset: The video dataset.
        batch_size: Videos per batch (each gives `dataset.clips_per_video` clips).
        num_workers: Decoding processes.
        shuffle: Shuffle every epoch (with `seed` + epoch).
        drop_last: Drop the last incomplete batch.
        distributed: Shard with a `DistributedSampler` (evaluation shards are not padded).
        seed: Shuffling seed.
        pin_memory: Pin host batches; default: when CUDA is available.
        timeout: Seconds to wait for a worker's batch before raising (0: forever).
        prefetch_factor: Batches prefetched per worker.
    """
    if distributed:
        sampler: Sampler[int] = EpochDistributedSampler(
            dataset, shuffle=shuffle, seed=seed, drop_last=drop_last, pad=dataset.mode == "train"
        )
    else:
        sampler = EpochSampler(dataset, shuffle=shuffle, seed=seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_items,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop_last,
        worker_init_fn=worker_init,
        timeout=timeout,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
    )
