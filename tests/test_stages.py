"""Recipes in stages: one command trains ``model.pretrained_recipe`` first, then the recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from builtin_helpers import SMALL_RUN

import nlvideo.pipeline
from nlvideo.cli.train import main as train_main
from nlvideo.config import load_config
from nlvideo.config.stages import training_stages

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "builtin"
RECIPE, NAMES = CONFIGS / "same_shape.yaml", CONFIGS / "shape_names.yaml"
# The recipe's first stage by absolute path: the tests run in a temporary folder.
FIRST = f"model.pretrained_recipe={NAMES}"


def _stages(*overrides: str) -> list:
    overrides = (FIRST, *overrides)
    return training_stages(load_config(RECIPE, overrides), overrides)


def test_the_same_shape_recipe_trains_its_names_stage_first(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    names, same = _stages()
    assert (names.synthetic.task, same.synthetic.task) == ("shape_names", "same_shape")
    assert names == load_config(NAMES)  # the first stage is its own recipe, as it is
    assert Path(names.train.output_dir) / "last.pt" == Path(same.model.pretrained)


def test_the_command_lines_overrides_change_both_stages_but_each_stages_own_keys(
    monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    names, same = _stages("model.name=i3d_tiny", "train.seed=3", "synthetic.seed=3")
    for stage in (names, same):
        assert (stage.model.name, stage.train.seed, stage.synthetic.seed) == ("i3d_tiny", 3, 3)
    assert names.train.output_dir == "runs/shape_names/i3d_tiny_seed3"
    assert same.model.pretrained == "runs/shape_names/i3d_tiny_seed3/last.pt"
    assert not names.model.pretrained_recipe  # nothing to train before the names stage
    names, same = _stages("train.output_dir=elsewhere")  # where the recipe itself writes
    assert (names.train.output_dir, same.train.output_dir) == (
        "runs/shape_names/i3d_nl_tiny_seed0",
        "elsewhere",
    )


def test_without_pretrained_weights_or_a_recipe_there_is_one_stage(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (scratch,) = _stages("model.pretrained=''")
    assert scratch.synthetic.task == "same_shape" and not scratch.model.pretrained
    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"")
    (given,) = _stages(f"model.pretrained={weights}", "model.pretrained_recipe=''")
    assert given.model.pretrained == str(weights)


def test_weights_the_first_stage_would_not_write_are_refused_naming_both(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"model.pretrained=other.pt: not what") as e:
        _stages("model.pretrained=other.pt")
    assert "runs/shape_names/i3d_nl_tiny_seed0/last.pt" in str(e.value)
    assert "model.pretrained_recipe=''" in str(e.value)


def test_a_missing_first_stage_recipe_is_named_with_its_key(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"^nowhere.yaml: does not exist \(model.pretrained_rec"):
        _stages("model.pretrained_recipe=nowhere.yaml")


def test_a_recipe_that_is_its_own_first_stage_is_refused(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    loop = tmp_path / "loop.yaml"
    loop.write_text(
        "model:\n  pretrained: runs/loop/last.pt\n  pretrained_recipe: loop.yaml\n"
        "train:\n  output_dir: runs/loop\n"
    )
    with pytest.raises(ValueError, match=r"loop.yaml: a stage of its own first stages"):
        training_stages(load_config(loop))


def test_a_bad_path_of_the_first_stage_is_reported_before_anything_runs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    first = tmp_path / "first.yaml"
    first.write_text("model:\n  pretrained: nowhere.pt\ntrain:\n  output_dir: runs/first\n")
    cfg = load_config(
        RECIPE, [f"model.pretrained_recipe={first}", "model.pretrained=runs/first/last.pt"]
    )
    with pytest.raises(ValueError, match=r"^nowhere.pt: does not exist \(model.pretrained\)"):
        training_stages(cfg)


# --------------------------------------------------------------------------- the command


def test_one_command_trains_the_names_stage_then_fine_tunes_it(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    runs = []  # (stage, did its weights exist when it started)
    real = nlvideo.pipeline.run_training

    def recording(cfg):
        pretrained = cfg.model.pretrained
        runs.append((cfg.synthetic.task, bool(pretrained) and Path(pretrained).is_file()))
        return real(cfg)

    monkeypatch.setattr(nlvideo.pipeline, "run_training", recording)
    args = ["--config", str(RECIPE), FIRST, f"synthetic.root={tmp_path / 'data'}", *SMALL_RUN]

    # train.max_steps reaches the first stage too: it stops unfinished, the second waits.
    assert train_main([*args, "train.max_steps=1"]) == 0
    assert runs == [("shape_names", False)]
    assert "stage 1/2: not finished" in capsys.readouterr().out
    assert not Path("runs/same_shape").exists()

    assert train_main(args) == 0  # the rerun continues the first stage, then the second
    assert runs[1:] == [("shape_names", False), ("same_shape", True)]
    out = capsys.readouterr().out
    assert "stage 1/2: runs/shape_names/i3d_nl_tiny_seed0" in out
    assert "stage 2/2: run folder: runs/same_shape/i3d_nl_tiny_seed0" in out
    names = torch.load("runs/shape_names/i3d_nl_tiny_seed0/last.pt", weights_only=True)
    same = torch.load("runs/same_shape/i3d_nl_tiny_seed0/last.pt", weights_only=True)
    assert names["step"] == 2 and same["step"] == 2
    assert same["config"]["model"]["pretrained"] == "runs/shape_names/i3d_nl_tiny_seed0/last.pt"
    assert len(names["classes"]) == 9 and same["classes"] == ["different", "same"]


def test_a_wrong_first_stage_is_one_line_and_exit_2_before_training(tmp_path, capsys):
    args = ["--config", str(RECIPE), FIRST, f"model.pretrained={tmp_path / 'x.pt'}"]
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("nlvideo-train: model.pretrained=") and err.count("\n") == 1
