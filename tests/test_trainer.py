"""Training loop: optimisation steps, exact resume, NaN stop, run files, LR schedule."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import torch
from conftest import TINY_TEST_VIEWS
from torch import nn

from nlvideo import pipeline
from nlvideo.builtin import generate_builtin_dataset
from nlvideo.config import Config, load_config
from nlvideo.engine.checkpoint import load_checkpoint
from nlvideo.models import build_model
from nlvideo.pipeline import run_training

DATA = {"num_train": 8, "num_val": 4, "seed": 0, "size": 32, "min_frames": 12, "max_frames": 16}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("builtin")
    generate_builtin_dataset(root, **DATA, workers=1)
    return root


def tiny_config(data_root: Path, out: Path, *extra: str) -> Config:
    """i3d_nl_tiny on 8 generated 32-pixel videos: 4 steps per epoch, 2 epochs."""
    overrides = [f"synthetic.root={data_root}"]
    overrides += [f"synthetic.{k}={v}" for k, v in DATA.items()]
    overrides += [
        *TINY_TEST_VIEWS,
        "data.num_clips=2",
        "data.num_workers=0",
        "train.batch_size=2",
        "train.eval_batch_size=4",
        "train.epochs=2",
        "train.device=cpu",
        "train.progress=false",
        "train.log_every=1",
        "optim.warmup_epochs=0.5",
        f"train.output_dir={out}",
        *extra,
    ]
    return load_config(None, overrides)


def records(out: Path, kind: str) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def test_two_steps_give_finite_loss_and_change_the_weights(data_root, tmp_path):
    cfg = tiny_config(data_root, tmp_path, "train.max_steps=2")
    torch.manual_seed(cfg.train.seed)  # the trainer seeds like this before building the model
    initial = build_model(cfg.model.name, num_classes=8).state_dict()
    run_training(cfg)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["step"] == 2
    train = records(tmp_path, "train")
    assert [r["step"] for r in train] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in train)
    # Every conv / linear kernel moved (biases followed by BatchNorm get no gradient at all).
    kernels = [k for k, v in initial.items() if v.ndim > 1]
    unchanged = [k for k in kernels if torch.equal(ckpt["model"][k], initial[k])]
    assert kernels and not unchanged


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_stopped_and_resumed_run_equals_an_uninterrupted_run(data_root, tmp_path, optimizer):
    # 6 steps = a whole epoch (4) + 2; the interrupted run stops mid-epoch at step 3.
    opt = f"optim.name={optimizer}"
    run_training(tiny_config(data_root, tmp_path / "a", "train.max_steps=6", opt))
    run_training(tiny_config(data_root, tmp_path / "b", "train.max_steps=3", opt))
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 3
    run_training(tiny_config(data_root, tmp_path / "b", "train.max_steps=6", opt))  # auto-resume
    a = load_checkpoint(tmp_path / "a" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["step"] == b["step"] == 6
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=1e-6, msg=key)
    for sa, sb in zip(
        a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True
    ):
        assert sa.keys() == sb.keys() and sa  # momentum buffer / AdamW moments and step
        for name in sa:
            torch.testing.assert_close(sb[name], sa[name], rtol=0, atol=1e-6, msg=name)
    loss_a = [r["loss"] for r in records(tmp_path / "a", "train")]
    loss_b = [r["loss"] for r in records(tmp_path / "b", "train")]
    assert loss_b == pytest.approx(loss_a, abs=1e-6)


def test_explicit_resume_path_continues_from_that_checkpoint(data_root, tmp_path):
    run_training(tiny_config(data_root, tmp_path / "first", "train.max_steps=1"))
    cfg = tiny_config(
        data_root,
        tmp_path / "second",
        "train.max_steps=2",
        f"train.resume={tmp_path}/first/last.pt",
    )
    run_training(cfg)
    assert [r["step"] for r in records(tmp_path / "second", "train")] == [2]


class _NaNAfter(nn.Module):
    """Wraps a model; from the n-th forward in training mode on, the logits are NaN."""

    def __init__(self, model: nn.Module, n: int) -> None:
        super().__init__()
        self.model, self.n, self.calls = model, n, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.n:
                out = out * float("nan")
        return out


def test_nan_loss_stops_the_run_naming_the_step(data_root, tmp_path, monkeypatch):
    real_build = pipeline.jobs.build_model
    monkeypatch.setattr(
        pipeline.jobs, "build_model", lambda *a, **k: _NaNAfter(real_build(*a, **k), n=3)
    )
    with pytest.raises(FloatingPointError, match=r"step 3\b"):
        run_training(tiny_config(data_root, tmp_path))


def test_run_folder_holds_checkpoints_config_classes_and_logs(data_root, tmp_path):
    metrics = run_training(tiny_config(data_root, tmp_path, "train.epochs=1"))
    names = {p.name for p in tmp_path.iterdir()}
    assert {"last.pt", "best.pt", "config.yaml", "classes.json", "metrics.jsonl"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    assert {"eval_report.json", "confusion.png"} <= names
    classes = json.loads((tmp_path / "classes.json").read_text())
    assert load_checkpoint(tmp_path / "best.pt")["classes"] == classes
    assert load_config(tmp_path / "config.yaml") == tiny_config(
        data_root, tmp_path, "train.epochs=1"
    )
    (epoch,) = records(tmp_path, "epoch")
    assert epoch["replaced"] == 0
    (evaluation,) = records(tmp_path, "eval")
    assert evaluation["video_top1"] == pytest.approx(metrics["video_top1"])
    assert metrics["num_videos"] == DATA["num_val"]


def test_missing_data_list_fails_before_any_work_naming_the_key(tmp_path):
    cfg = load_config(None, ["data.builtin=false", f"train.output_dir={tmp_path}/run"])
    with pytest.raises(ValueError, match=r"data\.train_list"):
        run_training(cfg)
    assert not (tmp_path / "run").exists()


def test_gpu_only_options_are_logged_no_ops_on_the_cpu(data_root, tmp_path, caplog):
    options = ("train.amp=bf16", "train.channels_last=true", "train.compile=true")
    caplog.set_level(logging.INFO, logger="nlvideo.engine")
    run_training(tiny_config(data_root, tmp_path, *options, "train.max_steps=1"))
    for option in options:
        key = option.split("=")[0]
        assert any(key in m and "ignored on cpu" in m for m in caplog.messages), key
    assert math.isfinite(records(tmp_path, "train")[0]["loss"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_gpu_options_train_with_finite_loss(data_root, tmp_path, amp):
    gpu = (
        "train.device=cuda",
        f"train.amp={amp}",
        "train.channels_last=true",
        "train.compile=true",
    )
    metrics = run_training(tiny_config(data_root, tmp_path, *gpu, "train.epochs=1"))
    assert all(math.isfinite(r["loss"]) for r in records(tmp_path, "train"))
    assert metrics["num_evaluated"] == DATA["num_val"]
    scaler = load_checkpoint(tmp_path / "last.pt")["scaler"]
    assert bool(scaler) == (amp == "fp16")  # GradScaler only for fp16
