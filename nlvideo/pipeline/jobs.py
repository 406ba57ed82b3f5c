"""Networks and jobs from a ``Config``: training, checkpoint evaluation, prediction."""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from nlvideo.config import Config, config_from_dict, config_to_dict, load_config
from nlvideo.data.annotations import VideoRecord
from nlvideo.data.formats.splits import (
    write_splits,
)
from nlvideo.engine.checkpoint import build_model_from_checkpoint, load_checkpoint, seed_everything
from nlvideo.engine.distributed import DistInfo, cleanup, init_distributed, resolve_device
from nlvideo.engine.evaluate import evaluate
from nlvideo.engine.precise_bn import PreciseBN
from nlvideo.engine.precision import effective_amp
from nlvideo.engine.predictor import Predictor
from nlvideo.engine.resume import load_resume_checkpoint
from nlvideo.engine.threads import set_cpu_threads
from nlvideo.engine.trainer import EvalModel, Trainer, TrainingParts
from nlvideo.metrics import EvalReport
from nlvideo.models import build_model
from nlvideo.models.freeze import freeze
from nlvideo.models.pretrained import Pretrained, open_pretrained
from nlvideo.models.test_head import with_test_head
from nlvideo.pipeline.data import (
    build_test_batches,
    build_test_loader,
    build_test_transform,
    build_train_loader,
    build_train_transform,
    check_config,
    clip_options,
    eval_records,
    run_data,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- models and jobs


def build_network(
    cfg: Config, num_classes: int, pretrained: Pretrained | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The configured network: seeded by ``train.seed``, ``model.pretrained`` loaded if set,
    then ``train.freeze`` applied (before any optimiser sees its parameters).

    The weights file is read once (``pretrained``: already opened); its Non-local semantics
    (PySlowFast's and Caffe2's: pool first, scaled logits) override the config's, so the model
    computes what the file's did.

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
    if pretrained is None and m.pretrained:
        pretrained = open_pretrained(m.pretrained, m.pretrained_format)
    if pretrained is not None:
        # The file's network. Stored with the checkpoint's model_kwargs, so eval / infer / a
        # later model.pretrained of the checkpoint rebuild it.
        needed = file_model_options(cfg, pretrained)
        changed = {k: v for k, v in needed.items() if not _same(kwargs.get(k), v)}
        if changed:
            logger.info(
                "model.pretrained (%s) sets %s",
                pretrained.format,
                ", ".join(f"model.{k}={v}" for k, v in changed.items()),
            )
            kwargs.update(changed)
    seed_everything(cfg.train.seed)  # the same initial weights on every rank
    model = build_model(m.name, **kwargs)
    if pretrained is not None:
        pretrained.load_into(model, strict=m.pretrained_strict)
    freeze(model, cfg.train.freeze)
    return model, kwargs


def file_model_options(cfg: Config, pretrained: Pretrained) -> dict[str, Any]:
    """The ``build_model`` options a weights file needs (its Non-local semantics; Caffe2: the
    unpadded stem pool and frozen-BN res3 Non-local groups) that the config must not contradict.

    Raises:
        ValueError: one line, when the config sets a key (default null) to another value.
    """
    m = cfg.model
    needed = {k: v for k, v in pretrained.model_options.items() if v is not None}
    nullable = type(m)()  # keys whose default is null: left null they follow the file,
    for key, value in needed.items():  # set they must agree with it
        set_value = getattr(m, key, None)
        if getattr(nullable, key, 0) is None and set_value is not None:
            if _same(set_value, value):
                continue
            raise ValueError(
                f"config key model.{key}={set_value}: model.pretrained={m.pretrained} "
                f"({pretrained.format}) needs model.{key}={value} to compute what its network "
                f"did; leave model.{key} unset (null)"
            )
    return needed


def _same(a: Any, b: Any) -> bool:
    """Equal option values (a config's list equals a reader's tuple)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return a == b


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
    # An unreadable, unsafe or unknown weights file fails before any data work.
    m = cfg.model
    pretrained = open_pretrained(m.pretrained, m.pretrained_format) if m.pretrained else None
    if pretrained is not None:
        file_model_options(cfg, pretrained)  # a config that contradicts the file, likewise
    data = run_data(cfg, info)
    if info.is_main and not cfg.data.builtin:  # the split, to evaluate or train on again
        folder = write_splits(data, Path(cfg.train.output_dir) / "data")
        logger.info(
            "data split (%d / %d videos) written to %s", len(data.train), len(data.val), folder
        )
    model, kwargs = build_network(cfg, len(data.classes), pretrained)
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
    _cpu_threads(cfg, info)
    try:
        return Trainer(cfg, info, build_training(cfg, info), resume=resume).fit()
    finally:
        cleanup(info)


def _cpu_threads(cfg: Config, info: DistInfo) -> None:
    """On CPU, leave the data workers their cores (``train.cpu_threads``)."""
    if info.device.type == "cpu":
        set_cpu_threads(cfg.train.cpu_threads, cfg.data.num_workers, info.world_size)


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
    _cpu_threads(cfg, info)
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
    return predictor_from_checkpoint(
        load_checkpoint(checkpoint), str(checkpoint), device=device, overrides=overrides
    )


def predictor_from_checkpoint(
    ckpt: dict[str, Any], source: str, *, device: str = "auto", overrides: Sequence[str] = ()
) -> Predictor:
    """``build_predictor`` of a checkpoint already read (``source``: its path, for errors)."""
    cfg = checkpoint_config(ckpt, overrides)
    dev = resolve_device(device)
    return Predictor(
        build_test_head(cfg, build_model_from_checkpoint(ckpt, device=dev, source=source)),
        ckpt["classes"],
        transform=build_test_transform(cfg),
        device=dev,
        amp=cfg.train.amp,
        **clip_options(cfg),
    )
