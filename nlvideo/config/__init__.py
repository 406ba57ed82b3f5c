"""Typed run configuration: dataclasses are the schema, YAML files and dotlists override them.

The dataclass defaults are the built-in CPU job (`python train.py` with no arguments): a tiny
I3D with Non-local blocks trained on the generated data set (the schema: ``schema.py``). Recipes
in `configs/` hold only overrides. OmegaConf merges and type-checks; it is used only in this
package, everything downstream sees plain dataclasses.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nlvideo.config.schema import (
    Config,
    DataConfig,
    ModelConfig,
    OptimConfig,
    SyntheticConfig,
    TrainConfig,
)

__all__ = [
    "PRETRAINED_FORMATS",
    "Config",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "SyntheticConfig",
    "TrainConfig",
    "check_paths",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "load_config",
    "require_file",
    "validate_config",
]


# The readers of nlvideo.models.pretrained (spelled here: config imports nothing of the models).
PRETRAINED_FORMATS = ("nlvideo", "pytorchvideo", "slowfast", "caffe2", "slowfast_c2", "imagenet2d")
_CHOICES: dict[str, tuple[str, ...]] = {
    "optim.name": ("sgd", "adamw"),
    "optim.schedule": ("cosine", "step"),
    "train.amp": ("none", "bf16", "fp16"),
    "data.backend": ("decord", "pyav"),
    "data.format": ("auto", "kinetics", "list", "ucf101", "hmdb51", "ssv2", "folder"),
    "data.split": (1, 2, 3),
    "model.pretrained_format": ("auto", *PRETRAINED_FORMATS),
    "synthetic.task": ("motion", "same_shape", "same_colour", "shape_names"),
    "model.nl_block": ("non_local", "global_context"),
    "train.freeze": ("none", "bn", "stem", "res2", "res3", "res4", "res5"),
    "model.test_head": ("global", "slowfast"),
}
_POSITIVE: tuple[str, ...] = (
    "data.num_frames",
    "data.stride",
    "data.crop_size",
    "data.test_scale",
    "data.num_clips",
    "data.num_crops",
    "data.repeat_clips",
    "train.epochs",
    "train.batch_size",
    "train.eval_batch_size",
    "train.eval_every",
    "train.log_every",
    "optim.head_lr_mult",
)
_NON_NEGATIVE: tuple[str, ...] = (
    "model.num_classes",
    "data.short_side",
    "data.test_crop_size",
    "data.num_workers",
    "optim.lr",
    "optim.weight_decay",
    "optim.warmup_epochs",
    "optim.warmup_iters",
    "train.iterations",
    "train.max_steps",
    "synthetic.min_distance",
    "train.precise_bn_batches",
    "train.checkpoint_every",
    "train.cpu_threads",
)


def load_config(base: str | Path | Config | None = None, overrides: Sequence[str] = ()) -> Config:
    """Merge defaults <- base (a YAML file of overrides, or a Config) <- dotlist overrides.

    Args:
        base: YAML file of overrides, a ``Config`` (e.g. a checkpoint's) or None for the
            defaults (the built-in CPU job).
        overrides: dotlist items such as ``optim.lr=0.02``.

    Raises:
        ValueError: naming the file or key, for a missing file, a misspelled key, a wrong type
            or a value out of range.
    """
    path = None
    if isinstance(base, Config):
        layers = [OmegaConf.structured(base)]
    else:
        layers = [OmegaConf.structured(Config)]
        if base is not None:
            path = Path(base)
            layers.append(_merge(layers[0], _read_yaml(path), str(path)))
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ValueError(f"override {item!r}: expected KEY=VALUE, e.g. optim.lr=0.02")
    if overrides:
        try:
            dotlist = OmegaConf.from_dotlist(list(overrides))
        except OmegaConfBaseException as e:
            raise ValueError(f"command-line overrides: {_first_line(e)}") from e
        layers.append(_merge(layers[-1], dotlist, "command-line override"))
    cfg = _to_config(layers[-1], "config")
    if not cfg.train.output_dir:
        stem = path.stem if path is not None else "default"
        cfg.train.output_dir = str(Path("runs") / stem)
    validate_config(cfg)
    return cfg


def _read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    try:
        loaded = OmegaConf.load(path)
    except Exception as e:  # YAML syntax errors come in many types
        raise ValueError(f"config file {path}: cannot parse YAML: {e}") from e
    if loaded is not None and not isinstance(loaded, DictConfig):
        raise ValueError(f"config file {path}: expected a mapping at the top level")
    return loaded or OmegaConf.create({})


def validate_config(cfg: Config) -> None:
    """Check value ranges and choices that the type system cannot express.

    Raises:
        ValueError: naming the key, what was expected and what was given.
    """
    for key, choices in _CHOICES.items():
        value = _get(cfg, key)
        if value not in choices:
            raise ValueError(f"config key {key}: expected one of {list(choices)}, got {value!r}")
    for key in _POSITIVE:
        if _get(cfg, key) <= 0:
            raise ValueError(f"config key {key}: expected a positive value, got {_get(cfg, key)}")
    for key in _NON_NEGATIVE:
        if _get(cfg, key) < 0:
            raise ValueError(f"config key {key}: expected >= 0, got {_get(cfg, key)}")
    if cfg.model.nl_init not in (None, "msra", "normal", "pytorch"):
        raise ValueError(
            f"config key model.nl_init: expected msra, normal, pytorch or null, "
            f"got {cfg.model.nl_init!r}"
        )
    if cfg.model.stem_pool_pad not in (None, 0, 1):
        raise ValueError(
            f"config key model.stem_pool_pad: expected 0, 1 or null, got {cfg.model.stem_pool_pad}"
        )
    groups = cfg.model.nl_group_frames
    if groups is not None and (len(groups) != 4 or any(g < 0 for g in groups)):
        raise ValueError(
            "config key model.nl_group_frames: expected null or 4 ints >= 0 (res2..res5 frames "
            f"per Non-local group, 0 = all frames), got {groups}"
        )
    lo_hi = cfg.data.train_scale
    if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
        raise ValueError(f"config key data.train_scale: expected [min, max] sizes, got {lo_hi}")
    if cfg.data.crop_size > lo_hi[0]:
        raise ValueError(
            f"config key data.crop_size: {cfg.data.crop_size} is larger than the smallest "
            f"training scale data.train_scale[0]={lo_hi[0]}"
        )
    test_crop = cfg.data.test_crop_size or cfg.data.crop_size
    if test_crop > cfg.data.test_scale:
        raise ValueError(
            f"config key data.test_crop_size: test crop {test_crop} is larger than "
            f"data.test_scale={cfg.data.test_scale}"
        )
    if not 0 < cfg.data.val_fraction < 1:
        raise ValueError(
            f"config key data.val_fraction: expected a value in (0, 1), got {cfg.data.val_fraction}"
        )
    if cfg.data.builtin and cfg.data.format != "auto":
        raise ValueError(
            f"config key data.format={cfg.data.format} is not read with data.builtin=true; "
            "add data.builtin=false"
        )
    if cfg.data.target_fps is not None and cfg.data.target_fps <= 0:
        raise ValueError(f"config key data.target_fps: expected > 0, got {cfg.data.target_fps}")
    for key in ("optim.step_epochs", "optim.step_iters"):
        steps = _get(cfg, key)
        if list(steps) != sorted(steps):
            raise ValueError(f"config key {key}: expected increasing values, got {steps}")
    syn = cfg.synthetic
    if syn.max_distance is not None and syn.max_distance < syn.min_distance:
        raise ValueError(
            f"config key synthetic.max_distance: expected null or >= synthetic.min_distance="
            f"{syn.min_distance}, got {syn.max_distance}"
        )
    if cfg.optim.clip_grad_norm is not None and cfg.optim.clip_grad_norm <= 0:
        value = cfg.optim.clip_grad_norm
        raise ValueError(f"config key optim.clip_grad_norm: expected > 0 or null, got {value}")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.train.device):
        raise ValueError(
            f"config key train.device: expected auto, cpu, cuda or cuda:N, got {cfg.train.device!r}"
        )


def check_paths(cfg: Config) -> None:
    """Files and folders the config names must exist and be of the right kind (no imports).

    Cheap enough to run before torch is imported: a mistyped path is reported at once.

    Raises:
        ValueError: ``<path>: <what is wrong> (<key>)``.
    """
    pretrained = cfg.model.pretrained
    files = {"model.pretrained": "" if "://" in pretrained else pretrained}
    d = cfg.data
    root = Path(d.root) if d.root else None
    if not d.builtin:
        if d.format == "list":
            for key in ("train_list", "val_list"):
                if not getattr(d, key):
                    raise ValueError(f"config key data.{key}: required with data.format=list")
        elif root is None and not d.train_list:
            raise ValueError(
                "config key data.root: required when data.builtin=false (the data set's "
                "folder; or data.train_list / data.val_list)"
            )
        if root is not None and not root.is_dir():
            what = "is not a directory" if root.exists() else "does not exist"
            raise ValueError(f"{root}: {what} (data.root)")
        for key in ("train_list", "val_list", "class_index"):
            value = getattr(d, key)  # as given, else under data.root (relative paths)
            if value and root is not None and not Path(value).exists():
                value = str(root / value) if (root / value).exists() else value
            files[f"data.{key}"] = value
    for key, value in files.items():
        if value:
            require_file(value, key)


def require_file(path: str | Path, key: str) -> None:
    """``path`` (the value of config key ``key``) must be a file.

    Raises:
        ValueError: ``<path>: does not exist (<key>)``, or ``is a directory, expected a file``.
    """
    if not Path(path).is_file():
        what = "is a directory, expected a file" if Path(path).is_dir() else "does not exist"
        raise ValueError(f"{path}: {what} ({key})")


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict of the config (for checkpoints and JSON)."""
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict[str, Any]) -> Config:
    """Inverse of config_to_dict; validates like load_config.

    Raises:
        ValueError: naming the key on unknown keys or wrong types.
    """
    base = OmegaConf.structured(Config)
    cfg = _to_config(_merge(base, OmegaConf.create(d), "config dict"), "config dict")
    validate_config(cfg)
    return cfg


def config_to_yaml(cfg: Config) -> str:
    """The resolved config as YAML text (saved as config.yaml in every run folder)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def _merge(base: Any, layer: Any, source: str) -> Any:
    try:
        return OmegaConf.merge(base, layer)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise ValueError(f"{source}: bad config key {key!r}: {_first_line(e)}") from e


def _to_config(node: Any, source: str) -> Config:
    try:
        return OmegaConf.to_object(node)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise ValueError(f"{source}: bad config key {key!r}: {_first_line(e)}") from e


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _get(cfg: Config, dotted: str) -> Any:
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj
