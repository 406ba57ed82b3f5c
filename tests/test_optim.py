"""Optimiser and learning-rate schedule: parameter groups, warmup, cosine/step, the recipes'."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from nlvideo.config import OptimConfig, load_config
from nlvideo.engine.optim import LRSchedule, build_optimizer, param_groups, schedule_steps
from nlvideo.models import build_model

REPO = Path(__file__).resolve().parents[1]


class _Opt:
    """Just enough of an optimiser for LRSchedule."""

    def __init__(self, lr: float) -> None:
        self.param_groups = [{"lr": lr}]


def test_warmup_rises_linearly_to_the_cosine_curve():
    sched = LRSchedule(_Opt(1.0), total_steps=100, warmup_steps=10, warmup_start_factor=0.1)
    cosine = [0.5 * (1 + math.cos(math.pi * s / 100)) for s in range(101)]
    for s in range(10):
        assert sched.factor(s) == pytest.approx(0.1 + (cosine[10] - 0.1) * s / 10)
    for s in range(10, 101):
        assert sched.factor(s) == pytest.approx(cosine[s])


def test_step_schedule_multiplies_by_gamma_at_each_milestone():
    sched = LRSchedule(_Opt(1.0), total_steps=30, kind="step", milestones=[10, 20], gamma=0.5)
    assert [sched.factor(s) for s in (0, 9, 10, 19, 20, 29)] == [1, 1, 0.5, 0.5, 0.25, 0.25]


def test_schedule_sets_the_optimiser_lr_each_step_and_resumes_from_its_state():
    opt = _Opt(0.2)
    sched = LRSchedule(opt, total_steps=10, kind="step", milestones=[3])
    for _ in range(3):
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02)
    other = _Opt(0.2)
    LRSchedule(other, total_steps=10, kind="step", milestones=[3]).load_state_dict(
        sched.state_dict()
    )
    assert other.param_groups[0]["lr"] == pytest.approx(0.02)


def test_no_decay_option_puts_every_norm_and_bias_parameter_in_the_zero_decay_group():
    model = build_model("i3d_nl_tiny", num_classes=4)
    decay, no_decay = param_groups(model, weight_decay=1e-4, no_decay_bn_bias=True)
    assert no_decay["weight_decay"] == 0.0
    zero = {id(p) for p in no_decay["params"]}
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            assert id(module.weight) in zero and id(module.bias) in zero, name
        if getattr(module, "bias", None) is not None:
            assert id(module.bias) in zero, name
    n_params = len(list(model.parameters()))
    assert len(decay["params"]) + len(no_decay["params"]) == n_params


@pytest.mark.parametrize(("name", "kind"), [("sgd", torch.optim.SGD), ("adamw", torch.optim.AdamW)])
def test_optimizer_is_chosen_by_name_with_the_configured_decay_groups(name, kind):
    model = build_model("i3d_nl_tiny", num_classes=4)
    opt = build_optimizer(model, OptimConfig(name=name, lr=0.003, weight_decay=0.05))
    assert isinstance(opt, kind)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert all(g["lr"] == 0.003 for g in opt.param_groups)
    with pytest.raises(ValueError, match=r"optim\.name"):
        build_optimizer(model, OptimConfig(name="adam"))


def test_head_learning_rate_is_lr_times_mult_at_every_step_of_the_schedule():
    model = build_model("i3d_nl_tiny", num_classes=4)
    cfg = OptimConfig(name="sgd", lr=0.01, head_lr_mult=10.0)
    opt = build_optimizer(model, cfg)
    head = {id(p) for p in model.blocks[-1].parameters()}
    sched = LRSchedule(opt, total_steps=20, warmup_steps=5, warmup_start_factor=0.1)
    for step in range(20):
        for group in opt.param_groups:
            in_head = {id(p) for p in group["params"]} <= head
            expected = cfg.lr * (cfg.head_lr_mult if in_head else 1.0) * sched.factor(step)
            assert group["lr"] == pytest.approx(expected)
        sched.step()
    assert sum({id(p) for p in g["params"]} <= head for g in opt.param_groups) == 2  # w, b


# --------------------------------------------------------------------------- recipes


PAPER_RECIPES = [
    "i3d_nl5_r50_32x2",
    "i3d_nl10_r50_32x2",
    "i3d_r50_32x2",
    "c2d_r50_32x2",
    "c2d_nl5_r50_32x2",
]
PYSLOWFAST_RECIPES = ["c2d_r50_8x8", "i3d_r50_8x8", "i3d_nl5_r50_8x8"]


def test_bn_only_option_exempts_exactly_the_norm_layers_and_keeps_biases_decayed():
    model = build_model("i3d_nl_tiny", num_classes=4)
    decay, no_decay = param_groups(
        model, weight_decay=1e-4, no_decay_bn_bias=False, no_decay_bn=True
    )
    zero = {id(p) for p in no_decay["params"]}
    # Independent listing: BN parameters by module name, as PySlowFast's isinstance(_NormBase)
    # and the release's "_bn" blob names pick them.
    bn = {
        id(p)
        for name, p in model.named_parameters()
        if isinstance(model.get_submodule(name.rsplit(".", 1)[0]), nn.BatchNorm3d)
    }
    assert zero == bn and len(bn) > 0
    biases = [
        p for name, p in model.named_parameters() if name.endswith("bias") and id(p) not in bn
    ]
    assert biases and all(id(p) in {id(q) for q in decay["params"]} for p in biases)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (1e-4, 0.0)


@pytest.mark.parametrize("name", PAPER_RECIPES + PYSLOWFAST_RECIPES)
def test_every_recipe_uses_nesterov_and_exempts_bn_only_as_its_reference(name):
    """SOLVER.NESTEROV: True and BN.WEIGHT_DECAY / WEIGHT_DECAY_BN: 0.0 in both references."""
    cfg = load_config(REPO / "configs" / "kinetics400" / f"{name}.yaml")
    with torch.device("meta"):
        model = build_model(cfg.model.name, **cfg.model.model_kwargs(400))
    opt = build_optimizer(model, cfg.optim)
    assert isinstance(opt, torch.optim.SGD)
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in opt.param_groups)
    decay, no_decay = opt.param_groups
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    assert len(no_decay["params"]) == 2 * len(bn)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert id(model.blocks[-1].proj.bias) in {id(p) for p in decay["params"]}
    assert cfg.train.precise_bn_batches == 200
    assert cfg.model.test_head == "slowfast"


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_paper_recipe_lr_is_0p01_divided_by_10_at_150k_and_300k_of_400k(name):
    cfg = load_config(REPO / "configs" / "kinetics400" / f"{name}.yaml")
    steps = schedule_steps(cfg.optim, cfg.train, steps_per_epoch=3000)
    assert steps["total_steps"] == 400_000
    sched = LRSchedule(_Opt(cfg.optim.lr), **steps, kind=cfg.optim.schedule, gamma=cfg.optim.gamma)
    expected = {0: 0.01, 149_999: 0.01, 150_000: 0.001, 299_999: 0.001, 300_000: 0.0001}
    for step, lr in expected.items():
        assert cfg.optim.lr * sched.factor(step) == pytest.approx(lr)
    assert (cfg.optim.weight_decay, cfg.optim.momentum, cfg.model.dropout) == (1e-4, 0.9, 0.5)
    assert cfg.data.train_scale == [256, 320] and cfg.data.crop_size == 224
    assert (cfg.data.num_clips, cfg.data.num_crops, cfg.data.test_crop_size) == (10, 3, 256)
    assert (cfg.data.num_frames, cfg.data.stride, cfg.train.batch_size) == (32, 2, 64)
    assert cfg.optim.warmup_iters == 0
    assert cfg.model.name == name and cfg.model.pretrained_format == "imagenet2d"
    assert cfg.model.pretrained.endswith("resnet50-0676ba61.pth")


def test_pyslowfast_recipe_warms_up_from_0p01_then_cosine():
    cfg = load_config(REPO / "configs" / "kinetics400" / "i3d_nl5_r50_8x8.yaml")
    spe = 100
    sched = LRSchedule(
        _Opt(cfg.optim.lr),
        **schedule_steps(cfg.optim, cfg.train, spe),
        warmup_start_factor=cfg.optim.warmup_start_factor,
        kind=cfg.optim.schedule,
    )
    assert cfg.optim.lr * sched.factor(0) == pytest.approx(0.01)
    epoch_60 = 0.1 * 0.5 * (1 + math.cos(math.pi * 60 / 196))  # PySlowFast's cosine formula
    assert cfg.optim.lr * sched.factor(60 * spe) == pytest.approx(epoch_60)
    assert cfg.optim.lr * sched.factor(196 * spe) == pytest.approx(0.0)
