"""The one place where a ``Config`` becomes objects, for training, evaluation and inference.

Records (the built-in data set or the configured lists), datasets, loaders, transforms, the
network and the precision all come from here, so ``nlvideo-train``, ``nlvideo-eval`` and
``nlvideo-infer`` see a video through the same test pipeline. Modules below this one take
plain arguments; only this module and the ``build_*`` functions read config objects.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from nlvideo.builtin import generate_builtin_dataset
from nlvideo.config import Config, check_paths, config_from_dict, config_to_dict, load_config
from nlvideo.data.annotations import VideoRecord
from nlvideo.data.classes import NamedRecord
from nlvideo.data.dataset import VideoClipDataset
from nlvideo.data.formats.base import LayoutOptions
from nlvideo.data.formats.splits import (
    DataSplits,
    load_splits,
    map_to_classes,
    read_list,
    write_splits,
)
from nlvideo.data.loader import build_loader
from nlvideo.data.transforms import DeviceBatch, TestTransform, TrainTransform, prefetch
from nlvideo.engine.checkpoint import build_model_from_checkpoint, load_checkpoint, seed_everything
from nlvideo.engine.distributed import DistInfo, barrier, cleanup, init_distributed, resolve_device
from nlvideo.engine.evaluate import evaluate
from nlvideo.engine.precise_bn import PreciseBN
from nlvideo.engine.precision import effective_amp
from nlvideo.engine.predictor import Predictor
from nlvideo.engine.resume import load_resume_checkpoint
from nlvideo.engine.trainer import EvalModel, Trainer, TrainingParts
from nlvideo.metrics import EvalReport
from nlvideo.models import MODELS, build_model
from nlvideo.models.non_local import MODES
from nlvideo.models.pretrained import load_pretrained
from nlvideo.models.test_head import with_test_head

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


def _clip_options(cfg: Config) -> dict[str, Any]:
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
        **_clip_options(cfg),
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


# --------------------------------------------------------------------------- models and jobs


def build_network(cfg: Config, num_classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """The configured network (seeded by ``train.seed``, then ``model.pretrained`` if set).

    Returns:
        The model on the CPU and the ``build_model`` keywords it was built with.

    Raises:
        ValueError: ``model.num_classes`` disagrees with the data, or the weights do not fit.
    """
    m = cfg.model
    if m.num_classes and m.num_classes != num_classes:
        raise ValueError(
            f"model.num_classes={m.num_classes} but the data has {num_classes} classes"
        )
    kwargs = m.model_kwargs(num_classes)
    seed_everything(cfg.train.seed)  # the same initial weights on every rank
    model = build_model(m.name, **kwargs)
    if m.pretrained:
        load_pretrained(model, m.pretrained, m.pretrained_format)
    return model, kwargs


def build_test_head(cfg: Config, model: nn.Module) -> nn.Module:
    """``model`` scored with ``model.test_head`` (global pooling, or PySlowFast's windows)."""
    m, d = cfg.model, cfg.data
    return with_test_head(model, m.test_head, num_frames=d.num_frames, train_crop=d.crop_size)


def build_eval_model(cfg: Config, records: Sequence[VideoRecord], info: DistInfo) -> EvalModel:
    """Run before each evaluation: precise BN (``train.precise_bn_batches``), the test head."""
    t, amp = cfg.train, effective_amp(cfg.train.amp, info.device)
    loader = build_train_loader(cfg, records, info) if t.precise_bn_batches else None
    precise = PreciseBN(loader, build_train_transform(cfg), t.precise_bn_batches, info, amp, t.seed)
    return lambda model, epoch: build_test_head(cfg, precise(model, epoch))


def build_training(cfg: Config, info: DistInfo) -> TrainingParts:
    """Everything a ``Trainer`` needs, from the config."""
    check_config(cfg)
    data = run_data(cfg, info)
    if info.is_main and not cfg.data.builtin:  # the split, to evaluate or train on again
        folder = write_splits(data, Path(cfg.train.output_dir) / "data")
        logger.info(
            "data split (%d / %d videos) written to %s", len(data.train), len(data.val), folder
        )
    model, kwargs = build_network(cfg, len(data.classes))
    return TrainingParts(
        model=model,
        model_kwargs=kwargs,
        classes=data.classes,
        val_records=data.val,
        train_loader=build_train_loader(cfg, data.train, info),
        val_loader=build_test_loader(cfg, data.val, info),
        train_transform=build_train_transform(cfg),
        test_transform=build_test_transform(cfg),
        eval_model=build_eval_model(cfg, data.train, info),
    )


def run_training(cfg: Config) -> dict[str, Any]:
    """Train and evaluate as ``cfg`` says; returns the last evaluation (``EvalReport.to_dict``).

    Returns an empty dict when ``train.max_steps`` stops the run before any evaluation.

    Raises:
        ValueError: bad names, data paths, batch size or checkpoint (a resume under another
            config included), before training starts and before the run folder is written.
        FloatingPointError: the loss became NaN or infinite (the message names the step).
        TrainingInterrupted: SIGINT / SIGTERM stopped the run; a checkpoint was saved.
    """
    check_config(cfg)
    t = cfg.train
    resume = load_resume_checkpoint(t.output_dir, t.resume, config_to_dict(cfg))  # before data
    info = init_distributed(t.device)
    try:
        return Trainer(cfg, info, build_training(cfg, info), resume=resume).fit()
    finally:
        cleanup(info)


def checkpoint_config(ckpt: dict[str, Any], overrides: Sequence[str] = ()) -> Config:
    """The config a checkpoint was trained with, dotlist ``overrides`` applied and validated."""
    return load_config(config_from_dict(ckpt["config"]), overrides)


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    list_path: str = "",
    root: str | None = None,
    class_file: str = "",
    overrides: Sequence[str] = (),
) -> tuple[EvalReport, str]:
    """Multi-view evaluation of a checkpoint on a list (default: its validation videos).

    The list's classes are mapped to the checkpoint's by name (a subset is fine, an unknown
    class is an error); index labels need ``class_file`` (else ``data.class_index`` given in
    ``overrides``, else a class file beside the list).

    Runs on the checkpoint config's ``train.device`` (after ``overrides``), single-process or
    under ``torchrun``.

    Returns:
        The report (identical on every rank) and the name of the evaluated list.
    """
    ckpt = load_checkpoint(checkpoint)
    cfg = checkpoint_config(ckpt, overrides)
    classes = list(ckpt["classes"])
    info = init_distributed(cfg.train.device)
    try:
        model = build_model_from_checkpoint(ckpt, device=info.device, source=str(checkpoint))
        if not class_file and any(x.startswith("data.class_index=") for x in overrides):
            class_file = cfg.data.class_index
        records, list_name = eval_records(
            cfg, classes, info, list_path=list_path, root=root, class_file=class_file
        )
        report = evaluate(
            build_test_head(cfg, model),
            build_test_batches(cfg, records, info),
            records=records,
            classes=classes,
            amp=effective_amp(cfg.train.amp, info.device),  # as in training
            distributed=info.distributed,
        )
    finally:
        cleanup(info)
    return report, list_name


def build_predictor(
    checkpoint: str | Path, *, device: str = "auto", overrides: Sequence[str] = ()
) -> Predictor:
    """A Predictor from an nlvideo checkpoint: its model, classes and test-time config.

    Args:
        checkpoint: Path of the checkpoint.
        device: "auto" (GPU if available), "cpu", "cuda" or "cuda:N".
        overrides: Dotlist config overrides, e.g. ``data.num_clips=4``.

    Raises:
        FileNotFoundError, ValueError: naming the checkpoint or the key.
    """
    ckpt = load_checkpoint(checkpoint)
    cfg = checkpoint_config(ckpt, overrides)
    dev = resolve_device(device)
    return Predictor(
        build_test_head(cfg, build_model_from_checkpoint(ckpt, device=dev, source=str(checkpoint))),
        ckpt["classes"],
        transform=build_test_transform(cfg),
        device=dev,
        amp=cfg.train.amp,
        **_clip_options(cfg),
    )
