"""Device side of the loader: float conversion, normalisation, crops, flips, CUDA prefetch.

Workers ship uint8 clips (4x less host->device traffic than float); everything else happens
here as batched tensor ops, identical on CPU and CUDA:

* `TrainTransform`: per clip, scale the short side to a random integer in `scale`, take a
  random `crop_size` square, flip horizontally with p=0.5. Scale + crop + flip is one bilinear
  `grid_sample` per batch, equal (to float rounding) to `F.interpolate` followed by slicing.
* `TestTransform`: scale the short side to `scale` (skipped when the decoder already did) and
  take `num_crops` (1 or 3) crops along the longer side; view = window * num_crops + crop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from nlvideo.data.dataset import ClipBatch
from nlvideo.data.sampling import crop_offsets, resized_shape
from nlvideo.data.video import VideoFailure

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "ClipTransform",
    "DeviceBatch",
    "TestTransform",
    "TrainParams",
    "TrainTransform",
    "prefetch",
    "to_device",
]

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


@dataclass
class DeviceBatch:
    """A model-ready batch."""

    clips: Tensor  # float (B, 3, T, crop, crop), normalised (Kinetics mean/std), on device
    labels: Tensor  # long (B,)
    video_index: Tensor  # long (B,) index into the records list
    view_index: Tensor  # long (B,) temporal_clip * num_crops + crop (0 in train)
    failed: list[VideoFailure] = field(default_factory=list)  # videos that could not be read
    replaced: int = 0  # train: broken videos replaced by another in this batch


@dataclass
class TrainParams:
    """Per-clip augmentation: short side `scale`, crop corner (y, x) in the scaled frame, flip."""

    scale: Tensor  # long (N,)
    y: Tensor  # long (N,)
    x: Tensor  # long (N,)
    flip: Tensor  # bool (N,)


class _ClipTransform:
    """Shared by both transforms: normalisation and batching of clips of mixed sizes."""

    views_per_clip = 1  # model inputs made from one decoded clip

    def __init__(self, crop_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values, got {mean} and {std}")
        self.crop_size = crop_size
        self.mean, self.std = tuple(mean), tuple(std)

    def normalize(self, x: Tensor) -> Tensor:
        """uint8-range floats (N, 3, ...) -> (x / 255 - mean) / std."""
        shape = (1, 3) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(shape)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(shape)
        return (x / 255.0 - mean) / std

    def view_index(self, clip_index: Tensor) -> Tensor:
        """(N,) index of the clip within its video -> (N * views_per_clip,) view index."""
        return torch.zeros_like(clip_index)

    def apply(self, clips: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, clips: Tensor | Sequence[Tensor]) -> Tensor:
        """uint8 clips (N, 3, T, H, W), or a list of (V_i, 3, T, H_i, W_i) of mixed sizes."""
        if torch.is_tensor(clips):
            return self._checked_apply(clips)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(clips):
            groups.setdefault(tuple(x.shape[1:]), []).append(i)
        out: list[Tensor | None] = [None] * len(clips)
        for ids in groups.values():
            result = self._checked_apply(torch.cat([clips[i] for i in ids]))
            sizes = [clips[i].shape[0] * self.views_per_clip for i in ids]
            for i, part in zip(ids, result.split(sizes), strict=True):
                out[i] = part
        return torch.cat(out)

    def _checked_apply(self, clips: Tensor) -> Tensor:
        if clips.dim() != 5 or clips.shape[1] != 3:
            raise ValueError(f"expected clips (N, 3, T, H, W), got {tuple(clips.shape)}")
        if clips.shape[0] == 0:
            s = self.crop_size
            return clips.new_zeros((0, 3, clips.shape[2], s, s), dtype=torch.float32)
        return self.apply(clips)


class TrainTransform(_ClipTransform):
    """Training augmentation: random short-side scale, random square crop, optional flip.

    Args:
        crop_size: Side of the square crops.
        scale: Inclusive range of the random short side.
        flip: Random horizontal flips (p = 0.5).
        mean: Per-channel mean on the [0, 1] scale.
        std: Per-channel std on the [0, 1] scale.
        seed: Seed of the augmentation generator (CPU); None uses torch's global generator.
    """

    def __init__(
        self,
        *,
        crop_size: int = 224,
        scale: tuple[int, int] = (256, 320),
        flip: bool = True,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        seed: int | None = None,
    ) -> None:
        super().__init__(crop_size, mean, std)
        low, high = scale
        if not crop_size <= low <= high:
            raise ValueError(
                f"need crop_size <= scale[0] <= scale[1], got crop_size={crop_size}, "
                f"scale={tuple(scale)}"
            )
        self.scale, self.flip = (low, high), flip
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def sample_params(self, n: int, height: int, width: int) -> TrainParams:
        """Draw scale, crop corner and flip for `n` clips of size height x width (CPU)."""
        g = self.generator
        low, high = self.scale
        scale = torch.randint(low, high + 1, (n,), generator=g)
        ys, xs = [], []
        for s in scale.tolist():
            h, w = resized_shape(height, width, s)
            ys.append(int(torch.randint(0, h - self.crop_size + 1, (1,), generator=g)))
            xs.append(int(torch.randint(0, w - self.crop_size + 1, (1,), generator=g)))
        flip = torch.rand(n, generator=g) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
        return TrainParams(scale, torch.tensor(ys), torch.tensor(xs), flip)

    def apply_params(self, clips: Tensor, params: TrainParams) -> Tensor:
        """Scale + crop + flip each clip by `params` with one bilinear grid_sample."""
        n, c, t, height, width = clips.shape
        size, device = self.crop_size, clips.device
        sizes = [resized_shape(height, width, s) for s in params.scale.tolist()]
        h = torch.tensor([hw[0] for hw in sizes], dtype=torch.float32)
        w = torch.tensor([hw[1] for hw in sizes], dtype=torch.float32)
        steps = torch.arange(size, dtype=torch.float32)
        cols = torch.where(params.flip[:, None], size - 1 - steps, steps)  # (N, size)
        # Pixel centre u of the scaled frame -> normalised source coordinate (align_corners=False).
        gx = 2 * (params.x[:, None] + cols + 0.5) / w[:, None] - 1  # (N, size)
        gy = 2 * (params.y[:, None] + steps + 0.5) / h[:, None] - 1  # (N, size)
        gx, gy = gx.to(device), gy.to(device)
        grid = torch.stack(
            [gx[:, None, :].expand(n, size, size), gy[:, :, None].expand(n, size, size)], dim=-1
        )  # (N, size, size, 2) as (x, y)
        # Frames share their clip's grid, so time folds into channels: no copy, one small grid.
        frames = clips.reshape(n, c * t, height, width).float()  # (N, C, T, H, W) -> (N, CT, H, W)
        out = F.grid_sample(
            frames, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        out = out.view(n, c, t, size, size)  # (N, CT, s, s) -> (N, C, T, s, s)
        return self.normalize(out).contiguous()

    def apply(self, clips: Tensor) -> Tensor:
        return self.apply_params(clips, self.sample_params(*clips.shape[:1], *clips.shape[3:]))


class TestTransform(_ClipTransform):
    """Test views: scale the short side to `scale`, take `num_crops` crops along the long side.

    Args:
        crop_size: Side of the square crops.
        scale: Short side before cropping (skipped when the decoder already resized to it).
        num_crops: Crops per clip: 1 (centre) or 3 (both ends and centre of the long side).
        mean: Per-channel mean on the [0, 1] scale.
        std: Per-channel std on the [0, 1] scale.
    """

    __test__ = False  # not a pytest class

    def __init__(
        self,
        *,
        crop_size: int = 224,
        scale: int = 256,
        num_crops: int = 3,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
    ) -> None:
        super().__init__(crop_size, mean, std)
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
        if scale < crop_size:
            raise ValueError(f"test scale {scale} is smaller than crop_size {crop_size}")
        self.scale, self.num_crops = scale, num_crops

    @property
    def views_per_clip(self) -> int:  # type: ignore[override]
        return self.num_crops

    def view_index(self, clip_index: Tensor) -> Tensor:
        """view = clip * num_crops + crop, crops of a clip adjacent."""
        crops = torch.arange(self.num_crops, device=clip_index.device)
        return (clip_index[:, None] * self.num_crops + crops).reshape(-1)  # (N, K) -> (NK,)

    def apply(self, clips: Tensor) -> Tensor:
        """(N, 3, T, H, W) -> (N * num_crops, 3, T, crop, crop), crops of a clip adjacent."""
        n, c, t, height, width = clips.shape
        h, w = resized_shape(height, width, self.scale)
        x = clips
        if (h, w) != (height, width):
            x = F.interpolate(
                clips.reshape(n, c * t, height, width).float(),  # (N, C, T, H, W) -> (N, CT, H, W)
                size=(h, w),
                mode="bilinear",
                align_corners=False,
            ).view(n, c, t, h, w)
        s = self.crop_size
        crops = [x[..., y : y + s, x0 : x0 + s] for y, x0 in crop_offsets(h, w, s, self.num_crops)]
        # (N, K, C, T, s, s) -> (NK, C, T, s, s)
        out = torch.stack(crops, dim=1).reshape(n * self.num_crops, c, t, s, s)
        return self.normalize(out.float()).contiguous()


ClipTransform = TrainTransform | TestTransform


def to_device(
    batch: ClipBatch, device: torch.device | str, transform: ClipTransform
) -> DeviceBatch:
    """Copy a host batch (non-blocking from pinned memory) and transform it on `device`."""
    device = torch.device(device)
    if torch.is_tensor(batch.clips):
        clips: Tensor | list[Tensor] = batch.clips.to(device, non_blocking=True)
    else:
        clips = [c.to(device, non_blocking=True) for c in batch.clips]
    views = transform.views_per_clip
    labels = batch.labels.to(device, non_blocking=True).repeat_interleave(views)
    video_index = batch.video_index.to(device, non_blocking=True).repeat_interleave(views)
    view_index = transform.view_index(batch.view_index.to(device, non_blocking=True))
    return DeviceBatch(
        transform(clips), labels, video_index, view_index, batch.failed, batch.replaced
    )


def prefetch(
    loader: Iterable[ClipBatch], device: torch.device | str, transform: ClipTransform
) -> Iterator[DeviceBatch]:
    """Yield device batches; on CUDA a side stream prepares batch i+1 while i computes.

    On CPU this is a plain loop with the same results.
    """
    device = torch.device(device)
    if device.type != "cuda":
        for batch in loader:
            yield to_device(batch, device, transform)
        return
    stream = torch.cuda.Stream(device=device)
    batches = iter(loader)

    def stage() -> DeviceBatch | None:
        batch = next(batches, None)
        if batch is None:
            return None
        with torch.cuda.stream(stream):
            return to_device(batch, device, transform)

    ready = stage()
    while ready is not None:
        main = torch.cuda.current_stream(device)
        main.wait_stream(stream)
        for tensor in (ready.clips, ready.labels, ready.video_index, ready.view_index):
            tensor.record_stream(main)  # memory made on the side stream, used on the main one
        current, ready = ready, stage()
        yield current
