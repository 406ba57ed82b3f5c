"""Typed run configuration: dataclasses are the schema, YAML files and dotlists override them.

The dataclass defaults are the built-in CPU job (`python train.py` with no arguments): a tiny
I3D with Non-local blocks trained on the generated data set. Recipes in `configs/` hold only
overrides. OmegaConf merges and type-checks; it is used only in this module, everything
downstream sees plain dataclasses.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


@dataclass
class ModelConfig:
    name: str = "i3d_nl_tiny"  # a key of nlvideo.models' entrypoints
    num_classes: int = 0  # 0 = take the count from the data's class list
    dropout: float = 0.5  # before the classifier (paper: 0.5)
    nl_mode: str = "embedded"  # pairwise function: embedded | gaussian | dot | concatenate
    nl_locations: list[list[int]] | None = None  # per-stage block indices; None = model default
    nl_pool_first: bool = False  # max-pool phi/g before the 1x1x1 projections (cheaper)
    nl_scale_logits: bool = False  # divide logits by sqrt(channels)
    nl_sub_sample: bool = True  # 1x2x2 max-pool on phi/g (paper)
    zero_init_final_bn: bool | None = None  # residual blocks start as identity; None = per model
    nl_init: str | None = None  # NL convs: msra (PySlowFast) | normal (release) | pytorch; None =
    # per model
    test_head: str = "global"  # global: pool, then classify | slowfast: PySlowFast/release test
    # head (training-size window average-pool, softmax at each position, mean)
    pretrained: str = ""  # nlvideo / pytorchvideo / PySlowFast checkpoint or 2-D ImageNet weights
    pretrained_format: str = "auto"  # auto | nlvideo | pytorchvideo | slowfast | imagenet2d

    def model_kwargs(self, num_classes: int) -> dict[str, Any]:
        """Keyword arguments of ``nlvideo.models.build_model``: every field but the ones below."""
        not_options = ("name", "num_classes", "pretrained", "pretrained_format", "test_head")
        options = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in not_options
        }
        return {"num_classes": num_classes, **options}


@dataclass
class DataConfig:
    builtin: bool = True  # generate (once, cached) and use the built-in data set
    # Your own data (data.builtin=false): a layout (datasets/README.md) in data.root.
    format: str = "auto"  # auto | kinetics | list | ucf101 | hmdb51 | ssv2 | folder
    root: str = ""  # the data set folder; relative list and video paths are found under it
    train_list: str = ""  # "path label" list or Kinetics CSV (.csv); "" = the layout's own
    val_list: str = ""
    class_index: str = ""  # class file (index labels need one); "" = the layout's or names
    split: int = 1  # official split of ucf101 / hmdb51: 1 | 2 | 3
    val_fraction: float = 0.2  # folder layout: share of each class held out for validation
    skip_bad_rows: bool = False  # malformed / unknown-label rows: skipped, counted and listed
    # in <output_dir>/skipped_rows.txt instead of an error
    num_frames: int = 8  # frames per clip (T)
    stride: int = 2  # temporal sampling stride, in frames (or at target_fps)
    target_fps: float | None = None  # resample videos to this frame rate before striding
    short_side: int = 64  # decode-time resize of the shorter side (CPU workers)
    train_scale: list[int] = field(default_factory=lambda: [64, 80])  # short-side jitter range
    crop_size: int = 56  # training crop (and test crop unless test_crop_size is set)
    test_crop_size: int = 0  # 0 = crop_size; PySlowFast tests fully-convolutionally at 256
    test_scale: int = 64  # test-time short side
    num_clips: int = 4  # temporal views per video at test time
    num_crops: int = 1  # spatial views per clip at test time (1 = centre, 3 = left/centre/right)
    backend: str = "pyav"  # video reader: decord | pyav
    num_workers: int = 1  # DataLoader worker processes per rank (decoding overlaps training)
    repeat_clips: int = 1  # training clips drawn per video per epoch
    flip: bool = False  # random horizontal flips; off for the built-in data, whose classes
    # include left/right and clockwise/anticlockwise motion (a flip would swap their labels)
    max_retries: int = 10  # broken training videos replaced by another before giving up


@dataclass
class SyntheticConfig:
    """Parameters of the built-in data set (see nlvideo.builtin)."""

    root: str = "data/builtin"  # cache root: one sub-folder per parameter set
    num_train: int = 960
    num_val: int = 160
    seed: int = 0
    size: int = 64  # frame height and width
    min_frames: int = 16
    max_frames: int = 24


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw (built-in job: a tiny net from scratch) | sgd (paper recipes)
    lr: float = 0.002  # peak learning rate at train.batch_size (global)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.05
    no_decay_bn_bias: bool = True  # no weight decay on normalisation weights and biases
    no_decay_bn: bool = False  # no weight decay on normalisation weights only (the references'
    # BN.WEIGHT_DECAY / WEIGHT_DECAY_BN: 0.0; conv and fc biases keep it)
    schedule: str = "cosine"  # cosine | step, applied per iteration
    warmup_epochs: float = 1.0  # linear warmup length (epochs)
    warmup_start_factor: float = 0.1  # warmup starts at lr * this
    step_epochs: list[float] = field(default_factory=list)  # step schedule: lr *= gamma at each
    gamma: float = 0.1
    final_lr_factor: float = 0.0  # cosine ends at lr * this
    warmup_iters: int = 0  # used instead of warmup_epochs when train.iterations > 0
    step_iters: list[int] = field(default_factory=list)  # ... instead of step_epochs
    clip_grad_norm: float | None = None  # max global gradient norm; None = no clipping


@dataclass
class TrainConfig:
    epochs: int = 15
    iterations: int = 0  # > 0: length in optimiser steps instead of epochs (paper: 400k)
    max_steps: int = 0  # > 0: stop (and checkpoint) after this many steps; schedule unchanged
    batch_size: int = 8  # global, split over ranks
    eval_batch_size: int = 8  # videos per eval batch (global); each brings clips x crops views
    output_dir: str = ""  # "" = runs/<config file stem> (runs/default without a file)
    seed: int = 0
    amp: str = "none"  # none | bf16 | fp16 (CUDA only; GradScaler for fp16)
    channels_last: bool = False  # channels_last_3d memory format (CUDA only)
    compile: bool = False  # torch.compile the model (CUDA only)
    sync_bn: bool = False  # SyncBatchNorm under DDP
    eval_every: int = 5  # evaluate every N epochs (and always after the last)
    resume: str = ""  # checkpoint to resume; "" = output_dir/last.pt when it exists
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 10  # steps between metrics.jsonl / TensorBoard records (and log lines)
    checkpoint_every: int = 0  # > 0: also save last.pt every N steps within an epoch
    label_smoothing: float = 0.0
    precise_bn_batches: int = 0  # > 0: BN statistics re-estimated over N batches before each eval
    progress: bool = True  # tqdm progress bar on rank 0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


_CHOICES: dict[str, tuple[str, ...]] = {
    "optim.name": ("sgd", "adamw"),
    "optim.schedule": ("cosine", "step"),
    "train.amp": ("none", "bf16", "fp16"),
    "data.backend": ("decord", "pyav"),
    "data.format": ("auto", "kinetics", "list", "ucf101", "hmdb51", "ssv2", "folder"),
    "data.split": (1, 2, 3),
    "model.pretrained_format": ("auto", "nlvideo", "pytorchvideo", "slowfast", "imagenet2d"),
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
    "train.precise_bn_batches",
    "train.checkpoint_every",
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
        if value and not Path(value).is_file():
            what = "is a directory, expected a file" if Path(value).is_dir() else "does not exist"
            raise ValueError(f"{value}: {what} ({key})")


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
