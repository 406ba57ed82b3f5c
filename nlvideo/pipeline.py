"""The one place where a ``Config`` becomes objects, for training, evaluation and inference.

Records (the built-in data set or the configured lists), datasets, loaders, transforms, the
network and the precision all come from here, so ``nlvideo-train``, ``nlvideo-eval`` and
``nlvideo-infer`` see a video through the same test pipeline. Modules below this one take
plain arguments; only this module and the ``build_*`` functions read config objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from nlvideo.builtin import generate_builtin_dataset
from nlvideo.config import Config, check_paths, config_from_dict, config_to_dict, load_config
from nlvideo.data.annotations import VideoRecord, load_classes, read_records
from nlvideo.data.dataset import VideoClipDataset
from nlvideo.data.loader import build_loader
from nlvideo.data.transforms import DeviceBatch, TestTransform, TrainTransform, prefetch
from nlvideo.engine.checkpoint import build_model_from_checkpoint, load_checkpoint, seed_everything
from nlvideo.engine.distributed import DistInfo, barrier, cleanup, init_distributed, resolve_device
from nlvideo.engine.evaluate import evaluate
from nlvideo.engine.precise_bn import PreciseBN
from nlvideo.engine.precision import effective_amp
from nlvideo.engine.predictor import Predictor
from nlvideo.engine.resume import load_resume_checkpoint
from nlvideo.engine.trainer import Trainer, TrainingParts
from nlvideo.metrics import EvalReport
from nlvideo.models import MODELS, build_model
from nlvideo.models.non_local import MODES
from nlvideo.models.pretrained import load_pretrained
from nlvideo.models.test_head import with_test_head

logger = logging.getLogger(__name__)


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


@dataclass
class RunData:
    """Records and classes of a run."""

    train: list[VideoRecord]
    val: list[VideoRecord]
    classes: list[str]


def run_data(cfg: Config, info: DistInfo) -> RunData:
    """The built-in data set (generated once, by rank 0) or the configured lists."""
    d = cfg.data
    if d.builtin:
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
        builtin = generate_builtin_dataset(s.root, **options)  # cached now
        root, train_list, val_list = builtin.root, builtin.train_list, builtin.val_list
        classes: list[str] | None = list(builtin.classes)
    else:
        root, train_list, val_list = d.root or None, d.train_list, d.val_list
        classes = load_classes(d.class_index) if d.class_index else None
    train, classes = read_records(train_list, root=root, classes=classes)
    val, _ = read_records(val_list, root=root, classes=classes)
    return RunData(train, val, classes)


def eval_records(
    cfg: Config,
    classes: Sequence[str],
    info: DistInfo,
    *,
    list_path: str = "",
    root: str | None = None,
) -> tuple[list[VideoRecord], str]:
    """Videos to evaluate and the list's name: ``list_path``, else the config's validation list.

    Labels are read against ``classes`` (the checkpoint's). ``root`` defaults to
    ``data.root``; without either, list paths are relative to the list file.

    Raises:
        ValueError: no list to evaluate, or the built-in data set's classes differ.
    """
    if not list_path and cfg.data.builtin:  # generated (or reused) exactly as in training
        data = run_data(cfg, info)
        if data.classes != list(classes):
            raise ValueError("the checkpoint's classes differ from the built-in data set's")
        return data.val, "builtin_val"
    list_path = list_path or cfg.data.val_list
    if not list_path:
        raise ValueError("no list to evaluate: pass --list or set data.val_list")
    root = root if root is not None else (cfg.data.root or None)
    records, _ = read_records(list_path, root=root, classes=list(classes))
    return records, str(list_path)


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
    d = cfg.data
    return with_test_head(
        model, cfg.model.test_head, num_frames=d.num_frames, train_crop=d.crop_size
    )


def build_eval_model(
    cfg: Config, records: Sequence[VideoRecord], info: DistInfo
) -> Callable[[nn.Module, int], nn.Module]:
    """What the trainer runs before each evaluation: precise BN (if configured), the test head."""
    precise = None
    if cfg.train.precise_bn_batches:
        precise = PreciseBN(
            build_train_loader(cfg, records, info),  # a loader of its own: its own sample order
            build_train_transform(cfg),
            info.device,
            cfg.train.precise_bn_batches,
            amp=effective_amp(cfg.train.amp, info.device),
            distributed=info.distributed,
            seed=cfg.train.seed,
            rank=info.rank,
        )

    def eval_model(model: nn.Module, epoch: int) -> nn.Module:
        if precise is not None:
            precise(model, epoch)
        return build_test_head(cfg, model)

    return eval_model


def build_training(cfg: Config, info: DistInfo) -> TrainingParts:
    """Everything a ``Trainer`` needs, from the config."""
    check_config(cfg)
    data = run_data(cfg, info)
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
    overrides: Sequence[str] = (),
) -> tuple[EvalReport, str]:
    """Multi-view evaluation of a checkpoint on a list (default: its validation videos).

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
        records, list_name = eval_records(cfg, classes, info, list_path=list_path, root=root)
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
