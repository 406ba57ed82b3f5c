"""Checkpoints: atomic writes, safe loads with clear errors, RNG state, model rebuild."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch

from nlvideo.engine.checkpoint import (
    FORMAT,
    build_model_from_checkpoint,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from nlvideo.models import build_model
from nlvideo.models.pretrained import load_pretrained

KWARGS = {"num_classes": 5, "dropout": 0.5}


def make_ckpt(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    model = build_model("i3d_nl_tiny", **KWARGS)
    return {
        "format": FORMAT,
        "model": model.state_dict(),
        "model_name": "i3d_nl_tiny",
        "model_kwargs": dict(KWARGS),
        "classes": [f"c{i}" for i in range(5)],
        "epoch": 3,
        "step": 42,
        "rng": [capture_rng_state()],
    }


def test_save_then_load_round_trips_weights_and_metadata(tmp_path):
    ckpt = make_ckpt()
    save_checkpoint(tmp_path / "last.pt", ckpt)
    loaded = load_checkpoint(tmp_path / "last.pt")
    assert loaded["classes"] == ckpt["classes"] and loaded["step"] == 42
    for key, value in ckpt["model"].items():
        assert torch.equal(loaded["model"][key], value), key


def test_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, make_ckpt(seed=0))
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, make_ckpt(seed=1))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.pt"]  # no temporary file left behind


def test_new_checkpoint_replaces_the_old_one(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, make_ckpt(seed=0))
    new = make_ckpt(seed=1)
    save_checkpoint(path, new)
    loaded = load_checkpoint(path)
    assert all(torch.equal(loaded["model"][k], v) for k, v in new["model"].items())


def test_garbage_file_raises_value_error_naming_the_file(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(os.urandom(1000))
    with pytest.raises(ValueError, match=r"garbage\.pt"):
        load_checkpoint(path)


def test_truncated_checkpoint_raises_value_error_naming_the_file(tmp_path):
    path = tmp_path / "cut.pt"
    save_checkpoint(path, make_ckpt())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.pt"):
        load_checkpoint(path)


def test_plain_state_dict_is_rejected_as_not_an_nlvideo_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(build_model("i3d_tiny", num_classes=3).state_dict(), path)
    with pytest.raises(ValueError, match=r"plain\.pt.*format"):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_pickled_code_is_refused_by_the_weights_only_load(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": FORMAT, "x": _Evil()}, f, protocol=2)
    with pytest.raises(ValueError, match=r"evil\.pt"):
        load_checkpoint(path)


def test_missing_checkpoint_raises_file_not_found_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.pt"):
        load_checkpoint(tmp_path / "absent.pt")


def _draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    np.random.randn()  # leave a cached gaussian in numpy's state
    save_checkpoint(tmp_path / "rng.pt", {"rng": capture_rng_state()})
    expected = _draws()
    _draws()  # move every generator on
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    assert _draws() == expected


def test_model_rebuilt_from_checkpoint_gives_the_same_outputs(tmp_path):
    ckpt = make_ckpt()
    save_checkpoint(tmp_path / "m.pt", ckpt)
    original = build_model("i3d_nl_tiny", **KWARGS)
    original.load_state_dict(ckpt["model"])
    rebuilt = build_model_from_checkpoint(load_checkpoint(tmp_path / "m.pt"))
    x = torch.randn(2, 3, 4, 32, 32)
    assert not rebuilt.training
    torch.testing.assert_close(rebuilt(x), original.eval()(x), rtol=0, atol=0)


def test_checkpoint_weights_for_another_model_raise_naming_the_source():
    ckpt = make_ckpt()
    ckpt["model_name"] = "i3d_tiny"  # no Non-local blocks: unexpected keys
    with pytest.raises(ValueError, match="my-source"):
        build_model_from_checkpoint(ckpt, source="my-source")


def test_pretrained_nlvideo_checkpoint_with_other_classes_loads_all_but_the_head(tmp_path):
    ckpt = make_ckpt()
    save_checkpoint(tmp_path / "src.pt", ckpt)
    model = build_model("i3d_nl_tiny", num_classes=3)
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("blocks.6")}
    load_pretrained(model, tmp_path / "src.pt")
    state = model.state_dict()
    for key, value in ckpt["model"].items():
        if key in head_before:
            assert torch.equal(state[key], head_before[key]), key
        else:
            assert torch.equal(state[key], value), key
