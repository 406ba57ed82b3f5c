"""Records, datasets, loaders and transforms from a ``Config`` (train, eval and infer alike)."""

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from nlvideo.builtin import generate_builtin_dataset
from nlvideo.config import Config, check_paths
from nlvideo.data.annotations import VideoRecord
from nlvideo.data.classes import NamedRecord
from nlvideo.data.dataset import VideoClipDataset
from nlvideo.data.formats.base import LayoutOptions
from nlvideo.data.formats.splits import (
    DataSplits,
    load_splits,
    map_to_classes,
    read_list,
)
from nlvideo.data.loader import build_loader
from nlvideo.data.transforms import DeviceBatch, TestTransform, TrainTransform, prefetch
from nlvideo.engine.distributed import DistInfo, barrier
from nlvideo.models import MODELS, build_model
from nlvideo.models.non_local import MODES

logger = logging.getLogger(__name__)

SPLIT_FORMATS = ("ucf101", "hmdb51")  # layouts whose validation set is data.split's test list


# --------------------------------------------------------------------------- checks and records


def check_config(cfg: Config) -> None:
    """Fail fast, before any data is read or generated, on names and paths that cannot work.

    The file-system checks (``check_paths``) come first; then the model is built on the meta
    device (no memory, no time), so a bad name or option is found before any data is touched.

    Raises:
        ValueError: naming the key (or file) and the value.
    """
    check_paths(cfg)
    m = cfg.model
    if m.name not in MODELS:
        raise ValueError(
            f"config key model.name: unknown model {m.name!r}; valid names: {', '.join(MODELS)}"
        )
    if m.nl_mode not in MODES:
        raise ValueError(
            f"config key model.nl_mode: expected one of {list(MODES)}, got {m.nl_mode!r}"
        )
    try:
        with torch.device("meta"):
            build_model(m.name, **m.model_kwargs(m.num_classes or 2))
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise ValueError(f"config key model.*: {m.name} cannot be built: {e}") from e


def _builtin(cfg: Config, info: DistInfo) -> Path:
    """The built-in data set's folder (generated once, by rank 0)."""
    s = cfg.synthetic
    options = {
        "num_train": s.num_train,
        "num_val": s.num_val,
        "seed": s.seed,
        "size": s.size,
        "min_frames": s.min_frames,
        "max_frames": s.max_frames,
        "task": s.task,
        "min_distance": s.min_distance,
        "max_distance": s.max_distance,
    }
    if info.is_main:
        generate_builtin_dataset(s.root, **options)
    barrier(info)
    return generate_builtin_dataset(s.root, **options).root  # cached now


def _layout_options(cfg: Config, **lists: str) -> LayoutOptions:
    d = cfg.data
    return LayoutOptions(
        root=Path(d.root) if d.root else None,
        train_list=lists.get("train_list", d.train_list),
        val_list=lists.get("val_list", d.val_list),
        class_index=lists.get("class_index", d.class_index),
        split=d.split,
        val_fraction=d.val_fraction,
        seed=cfg.train.seed,
    )


def run_data(cfg: Config, info: DistInfo) -> DataSplits:
    """Training and validation records and the class table: built-in, or ``data.format``."""
    if cfg.data.builtin:
        root = _builtin(cfg, info)
        options = LayoutOptions(
            root=root, train_list=str(root / "train.txt"), val_list=str(root / "val.txt")
        )
        return load_splits("list", options)
    return load_splits(cfg.data.format, _layout_options(cfg), skip_bad_rows=cfg.data.skip_bad_rows)


def eval_records(
    cfg: Config,
    classes: Sequence[str],
    info: DistInfo,
    *,
    list_path: str = "",
    root: str | None = None,
    class_file: str = "",
) -> tuple[list[VideoRecord], str]:
    """Videos to evaluate, indexed by ``classes`` (the checkpoint's) by name, and their name.

    ``list_path`` (its index labels need ``class_file`` or a class file beside it), else the
    validation split of the config's data (built-in, or ``data.format`` in ``data.root``).
    ``root`` defaults to ``data.root``; without either, list paths are relative to the list.

    Raises:
        ValueError: no such list, index labels without class file, or classes the
            checkpoint does not know (all listed).
    """
    if list_path:
        root = root if root is not None else (cfg.data.root or None)
        named = read_list(list_path, root=root, class_file=class_file or None)
        return map_to_classes(named, list(classes), source=str(list_path)), str(list_path)
    if cfg.data.builtin:  # generated (or reused) exactly as in training
        root_dir = _builtin(cfg, info)
        named = read_list(root_dir / "val.txt")
        return map_to_classes(named, list(classes), source="builtin_val"), "builtin_val"
    check_config(cfg)
    overrides = {"class_index": class_file} if class_file else {}
    data = load_splits(cfg.data.format, _layout_options(cfg, **overrides))
    # The split's records back to names, then to the checkpoint's indices.
    named = [NamedRecord(r.path, data.classes[r.label], r.video_id) for r in data.val]
    name = f"{data.format}_val" + (
        f"_split{cfg.data.split}" if data.format in SPLIT_FORMATS else ""
    )
    return map_to_classes(named, list(classes), source=name), name


# --------------------------------------------------------------------------- data objects


def clip_options(cfg: Config) -> dict[str, Any]:
    """How clips are sampled and decoded: the same for datasets and the predictor."""
    d = cfg.data
    return {
        "num_frames": d.num_frames,
        "stride": d.stride,
        "target_fps": d.target_fps,
        "num_clips": d.num_clips,
        "short_side": d.short_side or None,
        "backend": d.backend,
    }


def _dataset(cfg: Config, records: Sequence[VideoRecord], mode: str) -> VideoClipDataset:
    return VideoClipDataset(
        records,
        mode=mode,
        **clip_options(cfg),
        max_retries=cfg.data.max_retries,
        seed=cfg.train.seed,
        repeat_clips=cfg.data.repeat_clips,
    )


def build_train_loader(cfg: Config, records: Sequence[VideoRecord], info: DistInfo) -> DataLoader:
    """Shuffled training batches of this rank (``train.batch_size`` is global)."""
    t = cfg.train
    if t.batch_size % info.world_size:
        raise ValueError(
            f"train.batch_size={t.batch_size} is not divisible by the {info.world_size} ranks"
        )
    return build_loader(
        _dataset(cfg, records, "train"),
        batch_size=t.batch_size // info.world_size,
        num_workers=cfg.data.num_workers,
        shuffle=True,
        drop_last=True,
        distributed=info.distributed,
        seed=t.seed,
    )


def build_test_loader(cfg: Config, records: Sequence[VideoRecord], info: DistInfo) -> DataLoader:
    """All test views of this rank's share of ``records`` (``train.eval_batch_size`` global)."""
    return build_loader(
        _dataset(cfg, records, "test"),
        batch_size=max(1, cfg.train.eval_batch_size // info.world_size),
        num_workers=cfg.data.num_workers,
        shuffle=False,
        drop_last=False,
        distributed=info.distributed,
        seed=cfg.train.seed,
    )


def build_train_transform(cfg: Config) -> TrainTransform:
    """Scale jitter, random crop and (if ``data.flip``) flips, seeded by ``train.seed``."""
    d = cfg.data
    return TrainTransform(
        crop_size=d.crop_size, scale=tuple(d.train_scale), flip=d.flip, seed=cfg.train.seed
    )


def build_test_transform(cfg: Config) -> TestTransform:
    """Resize to ``data.test_scale``, then ``data.num_crops`` crops of the test crop size."""
    d = cfg.data
    return TestTransform(
        crop_size=d.test_crop_size or d.crop_size, scale=d.test_scale, num_crops=d.num_crops
    )


def build_test_batches(
    cfg: Config, records: Sequence[VideoRecord], info: DistInfo
) -> Iterator[DeviceBatch]:
    """Model-ready test views (``num_clips`` x ``num_crops`` per video) on ``info.device``."""
    return prefetch(build_test_loader(cfg, records, info), info.device, build_test_transform(cfg))
