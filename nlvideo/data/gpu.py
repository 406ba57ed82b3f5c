"""Device side of the loader: float conversion, normalisation, crops, flips, CUDA prefetch.

Workers ship uint8 clips (4x less host->device traffic than float); everything else happens
here as batched tensor ops, identical on CPU and CUDA:

* train: per clip, scale the short side to a random integer in `train_scale`, take a random
  `crop_size` square, flip horizontally with p=0.5. Scale + crop + flip is one bilinear
  `grid_sample` per batch, equal (to float rounding) to `F.interpolate` followed by slicing.
* test: scale the short side to `test_scale` (skipped when the decoder already did) and take
  `num_crops` (1 or 3) crops along the longer side; view = window * num_crops + crop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from nlvideo.data.dataset import ClipBatch, build_loader
from nlvideo.data.sampling import crop_offsets, resized_shape

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "DeviceBatch",
    "DeviceTransform",
    "TrainParams",
    "build_loader",
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
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (index, path, reason)
    replaced: int = 0  # train: broken videos replaced by another in this batch


@dataclass
class TrainParams:
    """Per-clip augmentation: short side `scale`, crop corner (y, x) in the scaled frame, flip."""

    scale: Tensor  # long (N,)
    y: Tensor  # long (N,)
    x: Tensor  # long (N,)
    flip: Tensor  # bool (N,)


class DeviceTransform:
    """uint8 (N, 3, T, H, W) clips -> normalised float crops, on whatever device they are.

    Args:
        mode: "train" or "test".
        crop_size: Side of the square crops.
        train_scale: Inclusive range of the random short side in training.
        test_scale: Short side before the test crops.
        num_crops: Test crops per clip (1 centre, or 3 along the longer side).
        flip: Random horizontal flips in training.
        mean: Per-channel mean on the [0, 1] scale.
        std: Per-channel std on the [0, 1] scale.
        seed: Seed of the augmentation generator (CPU); None uses torch's global generator.
    """

    def __init__(
        self,
        *,
        mode: str,
        crop_size: int = 224,
        train_scale: tuple[int, int] = (256, 320),
        test_scale: int = 256,
        num_crops: int = 3,
        flip: bool = True,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        seed: int | None = None,
    ):
        if mode not in ("train", "test"):
            raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
        low, high = train_scale
        if not crop_size <= low <= high:
            raise ValueError(
                f"need crop_size <= train_scale[0] <= train_scale[1], got "
                f"crop_size={crop_size}, train_scale={train_scale}"
            )
        if test_scale < crop_size:
            raise ValueError(f"test_scale {test_scale} is smaller than crop_size {crop_size}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values, got {mean} and {std}")
        self.mode, self.crop_size = mode, crop_size
        self.train_scale, self.test_scale = (low, high), test_scale
        self.num_crops = num_crops if mode == "test" else 1
        self.flip = flip
        self.mean, self.std = tuple(mean), tuple(std)
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    # ------------------------------------------------------------------ helpers
    def normalize(self, x: Tensor) -> Tensor:
        """uint8-range floats (N, 3, ...) -> (x / 255 - mean) / std."""
        shape = (1, 3) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(shape)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(shape)
        return (x / 255.0 - mean) / std

    def sample_train_params(self, n: int, height: int, width: int) -> TrainParams:
        """Draw scale, crop corner and flip for `n` clips of size height x width (CPU)."""
        g = self.generator
        low, high = self.train_scale
        scale = torch.randint(low, high + 1, (n,), generator=g)
        ys, xs = [], []
        for s in scale.tolist():
            h, w = resized_shape(height, width, s)
            ys.append(int(torch.randint(0, h - self.crop_size + 1, (1,), generator=g)))
            xs.append(int(torch.randint(0, w - self.crop_size + 1, (1,), generator=g)))
        flip = torch.rand(n, generator=g) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
        return TrainParams(scale, torch.tensor(ys), torch.tensor(xs), flip)

    def apply_train(self, clips: Tensor, params: TrainParams) -> Tensor:
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

    def apply_test(self, clips: Tensor) -> Tensor:
        """(N, 3, T, H, W) -> (N * num_crops, 3, T, crop, crop), crops of a clip adjacent."""
        n, c, t, height, width = clips.shape
        h, w = resized_shape(height, width, self.test_scale)
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

    # ------------------------------------------------------------------ entry point
    def __call__(self, clips: Tensor | Sequence[Tensor]) -> Tensor:
        """uint8 clips (N, 3, T, H, W), or a list of (V_i, 3, T, H_i, W_i) of mixed sizes."""
        if torch.is_tensor(clips):
            return self._apply(clips)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(clips):
            groups.setdefault(tuple(x.shape[1:]), []).append(i)
        out: list[Tensor | None] = [None] * len(clips)
        for ids in groups.values():
            result = self._apply(torch.cat([clips[i] for i in ids]))
            sizes = [clips[i].shape[0] * self.num_crops for i in ids]
            for i, part in zip(ids, result.split(sizes), strict=True):
                out[i] = part
        return torch.cat(out)

    def _apply(self, clips: Tensor) -> Tensor:
        if clips.dim() != 5 or clips.shape[1] != 3:
            raise ValueError(f"expected clips (N, 3, T, H, W), got {tuple(clips.shape)}")
        if clips.shape[0] == 0:
            s = self.crop_size
            return clips.new_zeros((0, 3, clips.shape[2], s, s), dtype=torch.float32)
        if self.mode == "test":
            return self.apply_test(clips)
        params = self.sample_train_params(clips.shape[0], clips.shape[3], clips.shape[4])
        return self.apply_train(clips, params)


def to_device(
    batch: ClipBatch, device: torch.device | str, transform: DeviceTransform
) -> DeviceBatch:
    """Copy a host batch (non-blocking from pinned memory) and transform it on `device`."""
    device = torch.device(device)
    if torch.is_tensor(batch.clips):
        clips: Tensor | list[Tensor] = batch.clips.to(device, non_blocking=True)
    else:
        clips = [c.to(device, non_blocking=True) for c in batch.clips]
    crops = transform.num_crops
    labels = batch.labels.to(device, non_blocking=True).repeat_interleave(crops)
    video_index = batch.video_index.to(device, non_blocking=True).repeat_interleave(crops)
    view = batch.clip_index.to(device, non_blocking=True)
    if transform.mode == "test":
        view = (view[:, None] * crops + torch.arange(crops, device=device)).reshape(-1)
    else:
        view = torch.zeros_like(view)
    return DeviceBatch(transform(clips), labels, video_index, view, batch.failed, batch.replaced)


def prefetch(
    loader: Iterable[ClipBatch], device: torch.device | str, transform: DeviceTransform
) -> Iterator[DeviceBatch]:
    """Yield device batches; on CUDA a side stream prepares batch i+1 while i computes.

    On CPU this is a plain loop with the same results.
    """
    device = torch.device(device)
    dataset = getattr(loader, "dataset", None)
    if transform.mode == "test" and getattr(dataset, "num_crops", transform.num_crops) != (
        transform.num_crops
    ):
        raise ValueError(
            f"dataset.num_crops={dataset.num_crops} but transform.num_crops={transform.num_crops}"
        )
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
