"""Map-style video dataset (uint8 clips in CPU workers) and its collation into batches.

Collation: frames are resized at decode time so the short side is `short_side` (256), which
makes every 4:3 video 256x340, every 16:9 one 256x455, and so on; cropping and all float work
happen later on the device (`nlvideo.data.transforms`), which needs the full frame for
scale jitter and for the 3 test crops along the long side. `collate_items` therefore stacks the
clips into one (N, 3, T, H, W) tensor when they share a size (the common case) and otherwise
keeps a list of per-video tensors; the device transform handles both, batching videos of equal
size together, so any mix of sizes and aspect ratios forms a batch.

Broken videos never stop a run. In training a video that cannot be read is replaced by another
randomly drawn one (a warning is logged, at most `max_retries` times in a row) and the batch
counts the replacements in `replaced`. In evaluation it yields no clips and is listed in the
batch's `failed` as a `VideoFailure`, so it is reported, never silently dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from nlvideo.data.annotations import VideoRecord
from nlvideo.data.sampling import train_clip_indices, uniform_clip_indices
from nlvideo.data.video import BACKENDS, VideoError, VideoFailure, frames_to_clips, open_video

logger = logging.getLogger(__name__)

MODES = ("train", "test")


@dataclass
class VideoItem:
    """What a worker returns for one dataset index."""

    clips: torch.Tensor  # uint8 (V, 3, T, H, W); V = repeat_clips or num_clips (0: failed)
    label: int
    index: int  # record index of the video actually read (a replacement's, in training)
    replaced: int = 0  # broken videos skipped before this one (training)
    failure: VideoFailure | None = None  # set when a test video could not be read


@dataclass
class ClipBatch:
    """A collated batch on the host; one row per clip (N = sum of V over the videos)."""

    clips: torch.Tensor | list[torch.Tensor]  # uint8 (N, 3, T, H, W), or per-video tensors
    labels: torch.Tensor  # long (N,)
    video_index: torch.Tensor  # long (N,)
    view_index: torch.Tensor  # long (N,): temporal window (test) or repeat (train)
    failed: list[VideoFailure] = field(default_factory=list)
    replaced: int = 0

    def pin_memory(self) -> ClipBatch:
        """Called by the DataLoader's pin-memory thread."""
        clips = self.clips
        clips = clips.pin_memory() if torch.is_tensor(clips) else [c.pin_memory() for c in clips]
        return ClipBatch(
            clips,
            self.labels.pin_memory(),
            self.video_index.pin_memory(),
            self.view_index.pin_memory(),
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
        self.num_clips = num_clips
        self.short_side, self.backend = short_side, backend
        self.max_retries, self.seed, self.repeat_clips = max_retries, seed, repeat_clips
        self.epoch = 0

    @property
    def clips_per_video(self) -> int:
        """Clips decoded per item (the device transform may crop each into several views)."""
        return self.repeat_clips if self.mode == "train" else self.num_clips

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
                failure = VideoFailure(current, str(record.path), reason)
                return VideoItem(empty, record.label, current, 0, failure)
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

    view_index = torch.cat([torch.arange(n) for n in counts.tolist()] + [torch.zeros(0).long()])
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
        view_index=view_index,
        failed=failed,
        replaced=replaced,
    )
