"""The run configuration's schema: one dataclass per concern, a comment per field.

The defaults are the built-in CPU job (``python train.py`` with no arguments): a tiny I3D with
Non-local blocks trained on the generated data set. ``nlvideo.config`` loads and checks them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


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
    nl_block: str = "non_local"  # non_local | global_context (GCNet: one map for all queries)
    nl_init_scale: float = 0.0  # NL output BN's initial scale; 0 = identity at start (paper)
    zero_init_final_bn: bool | None = None  # residual blocks start as identity; None = per model
    nl_init: str | None = None  # NL convs: msra (PySlowFast) | normal (release) | pytorch; None =
    # per model
    stem_pool_pad: int | None = None  # stem max-pool spatial padding 0 | 1; None = per model
    # (PySlowFast layout 1, the paper's 32x2 nets 0); a Caffe2 .pkl sets 0 (the release's nets)
    nl_group_frames: list[int] | None = None  # per stage res2..res5: NL attention within groups
    # of this many frames (0 = all); None = all off; frozen-BN Caffe2 releases set [0, 4, 0, 0]
    test_head: str = "global"  # global: pool, then classify | slowfast: PySlowFast/release test
    # head (training-size window average-pool, softmax at each position, mean)
    # Weights to start from (nlvideo / pytorchvideo / PySlowFast / Caffe2 checkpoint or 2-D
    # ImageNet ResNet); the Non-local options (and stem_pool_pad, nl_group_frames) then follow
    # the file.
    pretrained: str = ""
    pretrained_format: str = "auto"  # auto (from the file) | a format of models.pretrained
    pretrained_strict: bool = True  # any tensor that does not fit is an error (new head excepted)
    # The recipe that trains model.pretrained: a first stage, run first by nlvideo-train with the
    # same command-line overrides (nlvideo.config.stages); "" = the weights already exist.
    pretrained_recipe: str = ""

    def model_kwargs(self, num_classes: int) -> dict[str, Any]:
        """Keyword arguments of ``nlvideo.models.build_model``: every field but the ones below."""
        not_options = (
            "name",
            "num_classes",
            "pretrained",
            "pretrained_format",
            "pretrained_strict",
            "pretrained_recipe",
            "test_head",
        )
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
    task: str = "motion"  # motion (8 motions) | same_shape | same_colour | shape_names (S1_S2)
    min_distance: float = 32.0  # same_shape/colour: least px between the shapes' centres ...
    max_distance: float | None = None  # ... and most (null: no bound; 0: near control, p2 = p1)


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
    head_lr_mult: float = 1.0  # the classifier's lr = lr * this (fine-tuning a new head)


@dataclass
class TrainConfig:
    epochs: int = 16
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
    cpu_threads: int = 0  # on CPU: intra-op threads; 0 = cores minus data.num_workers
    log_every: int = 10  # steps between metrics.jsonl / TensorBoard records (and log lines)
    checkpoint_every: int = 0  # > 0: also save last.pt every N steps within an epoch
    label_smoothing: float = 0.0
    freeze: str = "none"  # none | bn (all BatchNorm) | stem | res2..res5 (up to that stage)
    precise_bn_batches: int = 0  # > 0: BN statistics re-estimated over N batches before each eval
    progress: bool = True  # tqdm progress bar on rank 0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
