"""Freezing for fine-tuning: what is frozen stays bit-identical, BatchNorm stays in eval mode."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import write_checkpoint
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nlvideo.config import _CHOICES, OptimConfig, load_config
from nlvideo.engine.checkpoint import load_checkpoint
from nlvideo.engine.optim import build_optimizer
from nlvideo.models import build_model
from nlvideo.models.freeze import FREEZE_CHOICES, FrozenBatchNorm, freeze
from nlvideo.pipeline import build_network, run_training

# Module prefixes of each part in the VideoResNet layout, written out independently of freeze.py.
PREFIXES = {
    "stem": ("blocks.0.",),
    "res2": ("blocks.1.", "blocks.2."),
    "res3": ("blocks.3.",),
    "res4": ("blocks.4.",),
    "res5": ("blocks.5.",),
}
ORDER = ["stem", "res2", "res3", "res4", "res5"]


def pretrained_like(name: str = "i3d_nl_tiny", num_classes: int = 4) -> nn.Module:
    """A network whose BatchNorm scales, shifts and statistics are all non-trivial (as after
    pretraining), so that no frozen block is switched off by a zero-initialised scale."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=num_classes)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def expected_frozen(model: nn.Module, what: str) -> set[str]:
    """Names of the state-dict entries (parameters and BN buffers) that must not change."""
    names = set(model.state_dict())
    if what == "none":
        return set()
    if what == "bn":
        bns = [n for n, m in model.named_modules() if isinstance(m, _BatchNorm)]
        return {k for k in names if any(k.startswith(b + ".") for b in bns)}
    prefixes = tuple(p for part in ORDER[: ORDER.index(what) + 1] for p in PREFIXES[part])
    return {k for k in names if k.startswith(prefixes)}


def train_steps(model: nn.Module, steps: int = 3, **optim) -> torch.optim.Optimizer:
    """A few SGD steps on random clips, calling model.train() before each, as the trainer does."""
    opt = build_optimizer(model, OptimConfig(name="sgd", lr=0.05, weight_decay=1e-3, **optim))
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        model.train()
        clips = torch.randn(4, 3, 8, 32, 32, generator=gen)
        labels = torch.randint(0, 4, (4,), generator=gen)
        nn.functional.cross_entropy(model(clips), labels).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return opt


@pytest.mark.parametrize("what", FREEZE_CHOICES)
def test_frozen_entries_stay_bit_identical_and_all_others_move(what):
    model = pretrained_like()
    frozen = expected_frozen(model, what)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    freeze(model, what)
    train_steps(model)
    after = model.state_dict()
    assert set(after) == set(before)  # same keys: checkpoints stay interchangeable
    for key, value in after.items():
        if key in frozen:
            assert torch.equal(value, before[key]), f"{key} changed although frozen"
        elif key.endswith("num_batches_tracked"):
            assert value > before[key], key
        else:
            assert not torch.equal(value, before[key]), f"{key} did not move although trainable"


@pytest.mark.parametrize("what", FREEZE_CHOICES)
def test_optimizer_holds_exactly_the_trainable_parameters(what):
    model = pretrained_like()
    frozen = expected_frozen(model, what)
    freeze(model, what)
    opt = build_optimizer(model, OptimConfig(name="sgd", head_lr_mult=10.0))
    held = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(held) == len(set(held))
    trainable = {id(p) for n, p in model.named_parameters() if n not in frozen}
    assert set(held) == trainable
    assert all(p.requires_grad == (n not in frozen) for n, p in model.named_parameters())


def test_frozen_batchnorm_stays_in_eval_mode_and_keeps_its_statistics():
    bn = nn.BatchNorm3d(6)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    reference = nn.BatchNorm3d(6).eval()
    reference.load_state_dict(bn.state_dict())
    frozen = nn.Sequential(FrozenBatchNorm(bn))
    stats = {k: v.clone() for k, v in frozen.state_dict().items()}
    frozen.train()
    assert not frozen[0].training
    x = torch.randn(3, 6, 2, 4, 4) * 5 + 3  # batch statistics far from the running ones
    torch.testing.assert_close(frozen(x), reference(x), rtol=0, atol=0)
    for key, value in frozen.state_dict().items():
        assert torch.equal(value, stats[key]), key


def test_frozen_network_keeps_bn_eval_through_train_calls_and_predicts_like_the_unfrozen_one():
    model = pretrained_like()
    reference = pretrained_like().eval()
    freeze(model, "bn")
    model.train()
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    frozen_bns = [m for m in model.modules() if isinstance(m, FrozenBatchNorm)]
    assert frozen_bns and not any(m.training for m in frozen_bns)
    model.blocks[-1].dropout.p = 0.0  # dropout is the only other train-mode difference
    x = torch.randn(2, 3, 8, 32, 32)
    torch.testing.assert_close(model(x), reference(x))
    plain = build_model("i3d_nl_tiny", num_classes=4)  # a frozen state dict loads unfrozen
    plain.load_state_dict(model.state_dict())


def test_sync_batchnorm_conversion_leaves_frozen_layers_frozen():
    model = pretrained_like()
    freeze(model, "res3")
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(converted.blocks[3].res_blocks[0].branch2.norm_a, FrozenBatchNorm)
    assert isinstance(converted.blocks[4].res_blocks[0].branch2.norm_a, nn.SyncBatchNorm)


def test_freeze_logs_parameter_counts_per_stage(caplog):
    model = pretrained_like()
    stem = sum(p.numel() for p in model.blocks[0].parameters())
    res5 = sum(p.numel() for p in model.blocks[5].parameters())
    with caplog.at_level("INFO", logger="nlvideo.models.freeze"):
        counts = freeze(model, "res4")
    assert counts["stem"] == (stem, stem) and counts["res5"] == (0, res5)
    assert f"stem {stem:,}/{stem:,}" in caplog.text and f"res5 0/{res5:,}" in caplog.text


def test_unknown_freeze_value_is_refused_naming_the_key():
    assert _CHOICES["train.freeze"] == FREEZE_CHOICES  # the config spells the same choices
    with pytest.raises(ValueError, match=r"train\.freeze"):
        load_config(None, ["train.freeze=res6"])


def test_head_starts_as_the_references_normal_std_001_with_zero_bias():
    torch.manual_seed(0)
    proj = build_model("i3d_nl5_r50", num_classes=101).blocks[-1].proj
    assert proj.weight.mean().abs() < 1e-3
    assert proj.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert torch.count_nonzero(proj.bias) == 0


def test_build_network_applies_train_freeze_after_the_pretrained_weights(tmp_path):
    ckpt = write_checkpoint(tmp_path / "pre.pt", [f"c{i}" for i in range(5)], [])
    cfg = load_config(
        None, ["model.name=c2d_tiny", f"model.pretrained={ckpt}", "train.freeze=res4"]
    )
    model, _ = build_network(cfg, num_classes=3)  # a new 3-class head on 5-class weights
    weights = load_checkpoint(ckpt)["model"]
    for name, p in model.named_parameters():
        assert p.requires_grad == name.startswith(("blocks.5.", "blocks.6.")), name
        if not p.requires_grad:
            assert torch.equal(p, weights[name]), name


def test_fine_tuning_run_leaves_the_frozen_trunk_untouched(tiny_builtin, tmp_path):
    data, overrides = tiny_builtin
    ckpt = write_checkpoint(tmp_path / "pre.pt", list(data.classes), [])
    weights = load_checkpoint(ckpt)["model"]
    cfg = load_config(
        None,
        [
            *overrides,
            "model.name=c2d_tiny",
            f"model.pretrained={ckpt}",
            "train.freeze=res4",
            "optim.head_lr_mult=10",
            "train.batch_size=4",
            "train.max_steps=2",
            "train.progress=false",
            f"train.output_dir={tmp_path / 'run'}",
        ],
    )
    run_training(cfg)
    trained = load_checkpoint(tmp_path / "run" / "last.pt")
    assert trained["step"] == 2
    moved = set()
    for key, value in trained["model"].items():
        if key.startswith(("blocks.0.", "blocks.1.", "blocks.3.", "blocks.4.")):
            assert torch.equal(value, weights[key]), key
        elif not torch.equal(value, weights[key]):
            moved.add(key)
    assert "blocks.6.proj.weight" in moved and any(k.startswith("blocks.5.") for k in moved)


FINETUNE = sorted((Path(__file__).resolve().parents[1] / "configs" / "finetune").glob("*.yaml"))


@pytest.mark.parametrize("recipe", FINETUNE, ids=lambda p: p.stem)
def test_finetune_recipes_load_and_name_the_reference_they_follow(recipe):
    cfg = load_config(recipe)
    assert cfg.model.name == "i3d_nl5_r50" and cfg.model.pretrained
    assert cfg.optim.head_lr_mult > 1 and cfg.train.freeze in FREEZE_CHOICES
    text = recipe.read_text()
    assert "open-mmlab/mmaction2" in text and re.search(r"@ [0-9a-f]{40}", text)


def test_freeze_none_leaves_any_network_alone():
    model = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4))  # not a VideoResNet
    assert freeze(model, "none") == {}
    assert isinstance(model[1], nn.BatchNorm3d) and all(p.requires_grad for p in model.parameters())
    with pytest.raises(TypeError, match="VideoResNet layout"):
        freeze(model, "bn")
