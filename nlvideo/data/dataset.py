"""Map-style video dataset (uint8 clips in CPU workers), collation and the DataLoader.

Collation: frames are resized at decode time so the short side is `short_side` (256), which
makes every 4:3 video 256x340, every 16:9 one 256x455, and so on; cropping and all float work
happen later on the device (`nlvideo.data.gpu.DeviceTransform`), which needs the full frame for
scale jitter and for the 3 test crops along the long side. `collate_items` therefore stacks the
clips into one (N, 3, T, H, W) tensor when they share a size (the common case) and otherwise
keeps a list of per-video tensors; the device transform handles both, batching videos of equal
size together, so any mix of sizes and aspect ratios forms a batch.

Broken videos never stop a run. In training a video that cannot be read is replaced by another
randomly drawn one (a warning is logged, at most `max_retries` times in a row) and the batch
counts the replacements in `replaced`. In evaluation it yields no clips and is listed in the
batch's `failed` as (video index, path, reason), so it is reported, never silently dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from nlvideo.data.annotations import VideoRecord
from nlvideo.data.sampling import train_clip_indices, uniform_clip_indices
from nlvideo.data.video import BACKENDS, VideoError, frames_to_clips, open_video

logger = logging.getLogger(__name__)

MODES = ("train", "test")


@dataclass
class VideoItem:
    """What a worker returns for one dataset index."""

    clips: torch.Tensor  # uint8 (V, 3, T, H, W); V = repeat_clips or num_clips (0: failed)
    label: int
    index: int  # record index of the video actually read (a replacement's, in training)
    replaced: int = 0  # broken videos skipped before this one (training)
    failure: tuple[int, str, str] | None = None  # (index, path, reason) when evaluation failed


@dataclass
class ClipBatch:
    """A collated batch on the host; one row per clip (N = sum of V over the videos)."""

    clips: torch.Tensor | list[torch.Tensor]  # uint8 (N, 3, T, H, W), or per-video tensors
    labels: torch.Tensor  # long (N,)
    video_index: torch.Tensor  # long (N,)
    clip_index: torch.Tensor  # long (N,): temporal window (test) or repeat (train)
    failed: list[tuple[int, str, str]] = field(default_factory=list)
    replaced: int = 0

    def pin_memory(self) -> ClipBatch:
        """Called by the DataLoader's pin-memory thread."""
        clips = self.clips
        clips = clips.pin_memory() if torch.is_tensor(clips) else [c.pin_memory() for c in clips]
        return ClipBatch(
            clips,
            self.labels.pin_memory(),
            self.video_index.pin_memory(),
            self.clip_index.pin_memory(),
            self.failed,
            self.replaced,
        )


class VideoClipDataset(Dataset):
    """Videos as uint8 clips: one random window per item in training, all views in test.

    Length and order are those of `records` in both modes, so any sampler (including
    `DistributedSampler`) works. Randomness comes from a generator seeded with
    (seed, epoch, index): an item is reproducible, and changes with `set_epoch`.

    Args:
        records: Videos and labels.
        mode: "train" (one window per item, `repeat_clips` of them) or "test" (all views).
        num_frames: Frames per clip (T).
        stride: Frames between sampled frames (at `target_fps` if set).
        target_fps: Count `stride` at this frame rate; None keeps each video's rate.
        num_clips: Test windows per video, uniformly spaced.
        num_crops: Test crops per window (done on the device; kept here for the view count).
        short_side: Decode-time resize of the shorter side; None keeps the original size.
        backend: "decord" or "pyav".
        max_retries: Broken videos replaced in a row before training gives up.
        seed: Base seed of the sampling.
        repeat_clips: Training windows decoded from one open of a video (repeated sampling).
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        *,
        mode: str,
        num_frames: int = 8,
        stride: int = 8,
        target_fps: float | None = None,
        num_clips: int = 10,
        num_crops: int = 3,
        short_side: int | None = 256,
        backend: str = "decord",
        max_retries: int = 10,
        seed: int = 0,
        repeat_clips: int = 1,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
        for name, value in [
            ("num_frames", num_frames),
            ("stride", stride),
            ("num_clips", num_clips),
            ("repeat_clips", repeat_clips),
        ]:
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not records:
            raise ValueError("records is empty: no videos to load")
        self.records = list(records)
        self.mode = mode
        self.num_frames, self.stride, self.target_fps = num_frames, stride, target_fps
        self.num_clips, self.num_crops = num_clips, num_crops
        self.short_side, self.backend = short_side, backend
        self.max_retries, self.seed, self.repeat_clips = max_retries, seed, repeat_clips
        self.epoch = 0

    @property
    def views_per_video(self) -> int:
        """Clips the model sees per item after the device transform."""
        return self.repeat_clips if self.mode == "train" else self.num_clips * self.num_crops

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Change the random windows (the loader's sampler calls this)."""
        self.epoch = epoch

    def _read(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        record = self.records[index]
        with open_video(record.path, backend=self.backend, short_side=self.short_side) as reader:
            kwargs = dict(
                num_frames=self.num_frames,
                stride=self.stride,
                video_fps=reader.fps,
                target_fps=self.target_fps,
            )
            if self.mode == "train":
                windows = np.stack(
                    [
                        train_clip_indices(reader.num_frames, generator=rng, **kwargs)
                        for _ in range(self.repeat_clips)
                    ]
                )
            else:
                windows = uniform_clip_indices(
                    reader.num_frames, num_clips=self.num_clips, **kwargs
                )
            return frames_to_clips(reader.read(windows))  # (V, 3, T, H, W)

    def __getitem__(self, index: int) -> VideoItem:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        current = index
        for replaced in range(self.max_retries + 1):
            record = self.records[current]
            try:
                return VideoItem(self._read(current, rng), record.label, current, replaced)
            except Exception as e:  # any decoder error means "this video is unusable"
                reason = e.reason if isinstance(e, VideoError) else f"{type(e).__name__}: {e}"
            if self.mode == "test":
                logger.warning(
                    "video %d failed and is excluded: %s: %s", current, record.path, reason
                )
                empty = torch.zeros(0, 3, self.num_frames, 1, 1, dtype=torch.uint8)
                return VideoItem(empty, record.label, current, 0, (current, record.path, reason))
            logger.warning("video %d skipped: %s: %s", current, record.path, reason)
            current = int(rng.integers(len(self.records)))
        raise RuntimeError(
            f"{self.max_retries + 1} videos in a row could not be read (last: {record.path}: "
            f"{reason}); check the data set, e.g. with nlvideo.data.validate_records"
        )


def collate_items(items: Sequence[VideoItem]) -> ClipBatch:
    """Concatenate the clips of all readable videos; list the failed ones."""
    good = [item for item in items if item.clips.shape[0] > 0]
    failed = [item.failure for item in items if item.failure is not None]
    replaced = sum(item.replaced for item in items)
    counts = torch.tensor([item.clips.shape[0] for item in good], dtype=torch.long)

    def per_clip(values: list[int]) -> torch.Tensor:
        return torch.repeat_interleave(torch.tensor(values, dtype=torch.long), counts)

    clip_index = torch.cat([torch.arange(n) for n in counts.tolist()] + [torch.zeros(0).long()])
    if not good:  # every video failed: an empty batch of the right rank and clip length
        clips: torch.Tensor | list[torch.Tensor] = items[0].clips
    elif len({item.clips.shape[1:] for item in good}) == 1:
        clips = torch.cat([item.clips for item in good])
    else:
        clips = [item.clips for item in good]
    return ClipBatch(
        clips=clips,
        labels=per_clip([item.label for item in good]),
        video_index=per_clip([item.index for item in good]),
        clip_index=clip_index,
        failed=failed,
        replaced=replaced,
    )


class EpochSampler(Sampler[int]):
    """Shuffles with (seed, epoch); `set_epoch` also moves the dataset's windows on."""

    def __init__(self, dataset: VideoClipDataset, *, shuffle: bool, seed: int = 0):
        self.dataset, self.shuffle, self.seed, self.epoch = dataset, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        if not self.shuffle:
            return iter(range(len(self.dataset)))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(len(self.dataset), generator=generator).tolist())


class EpochDistributedSampler(DistributedSampler):
    """`DistributedSampler` whose `set_epoch` also reaches the dataset.

    With `pad=False` (evaluation) each rank takes every `num_replicas`-th index and nothing is
    repeated, so shards differ in length by at most one and no video is counted twice.
    """

    def __init__(self, dataset: VideoClipDataset, *, pad: bool = True, **kwargs):
        super().__init__(dataset, **kwargs)
        self.pad = pad

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.dataset.set_epoch(epoch)

    def __iter__(self):
        if self.pad:
            return super().__iter__()
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        if self.pad:
            return super().__len__()
        return len(range(self.rank, len(self.dataset), self.num_replicas))


def worker_init(worker_id: int) -> None:
    """One intra-op thread per loader worker (decoding is parallel across workers)."""
    torch.set_num_threads(1)


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
        batch_size: Videos per batch (each gives `dataset.views_per_video` clips).
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
