"""Config schema: merge order, fail-fast validation naming the key, recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlvideo.config import (
    Config,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    load_config,
)
from nlvideo.models import MODELS

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "configs" / "kinetics400").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_the_builtin_job():
    cfg = load_config()
    assert cfg.data.builtin and cfg.model.name == "i3d_nl_tiny"
    assert cfg.data.crop_size <= min(cfg.data.train_scale) <= cfg.synthetic.size * 2
    assert cfg.train.output_dir == "runs/default"
    assert not cfg.data.flip  # a flip would turn move_left into move_right


def test_default_yaml_is_the_schema_default_job():
    assert load_config(REPO / "configs" / "default.yaml") == load_config()


def test_dotlist_overrides_the_yaml_which_overrides_the_defaults(tmp_path):
    path = write(tmp_path, "optim:\n  lr: 0.5\n  momentum: 0.8\n")
    cfg = load_config(path, ["optim.lr=0.02", "model.nl_locations=[[],[0],[0],[]]"])
    assert cfg.optim.lr == 0.02
    assert cfg.optim.momentum == 0.8
    assert cfg.optim.weight_decay == Config().optim.weight_decay
    assert cfg.model.nl_locations == [[], [0], [0], []]


def test_output_dir_defaults_to_the_config_file_stem(tmp_path):
    assert load_config(write(tmp_path, "{}\n", "my_recipe.yaml")).train.output_dir == str(
        Path("runs") / "my_recipe"
    )


def test_misspelled_key_in_yaml_fails_naming_key_and_file(tmp_path):
    path = write(tmp_path, "optim:\n  lr: 0.1\n  momentun: 0.9\n")
    with pytest.raises(ValueError, match=r"optim\.momentun") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_misspelled_section_fails_naming_it():
    with pytest.raises(ValueError, match="trian"):
        load_config(None, ["trian.epochs=3"])


def test_misspelled_key_in_override_fails_naming_it():
    with pytest.raises(ValueError, match=r"train\.epoch\b"):
        load_config(None, ["train.epoch=3"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.epochs=abc", "train.epochs"),
        ("train.batch_size=2.5", "train.batch_size"),
        ("data.train_scale=[a,b]", "data.train_scale"),
        ("model.nl_sub_sample=maybe", "model.nl_sub_sample"),
    ],
)
def test_wrong_type_fails_naming_the_key(override, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_wrong_type_in_yaml_fails_naming_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"optim\.lr"):
        load_config(write(tmp_path, "optim:\n  lr: fast\n"))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optim.schedule=poly", "optim.schedule"),
        ("train.amp=fp8", "train.amp"),
        ("train.batch_size=0", "train.batch_size"),
        ("data.crop_size=999", "data.crop_size"),
        ("train.device=tpu", "train.device"),
        ("optim.step_epochs=[5,2]", "optim.step_epochs"),
        ("model.stem_pool_pad=2", "model.stem_pool_pad"),
        ("model.nl_group_frames=[0,4]", "model.nl_group_frames"),
        ("model.nl_group_frames=[0,-4,0,0]", "model.nl_group_frames"),
    ],
)
def test_out_of_range_value_fails_naming_the_key(override, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_missing_config_file_fails_naming_it(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_override_without_equals_sign_fails_naming_it():
    with pytest.raises(ValueError, match=r"optim\.lr"):
        load_config(None, ["optim.lr"])


def test_dict_round_trip_is_lossless():
    cfg = load_config(None, ["model.nl_locations=[[],[0],[0],[]]", "optim.clip_grad_norm=2.0"])
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_saved_yaml_reloads_to_the_same_config(tmp_path):
    cfg = load_config(RECIPES[0], ["train.output_dir=somewhere"])
    assert load_config(write(tmp_path, config_to_yaml(cfg))) == cfg


def test_config_from_dict_rejects_unknown_keys():
    d = config_to_dict(Config())
    d["train"]["bogus"] = 1
    with pytest.raises(ValueError, match=r"train\.bogus"):
        config_from_dict(d)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_loads_and_names_a_model(recipe):
    cfg = load_config(recipe)
    assert cfg.model.name in MODELS
    assert not cfg.data.builtin
    assert cfg.train.batch_size == 64
    assert cfg.data.flip
    assert cfg.train.output_dir == str(Path("runs") / recipe.stem)


def test_all_five_recipes_exist():
    names = {p.stem for p in RECIPES}
    assert {
        "c2d_r50_8x8",
        "i3d_r50_8x8",
        "i3d_nl5_r50_8x8",
        "i3d_nl5_r50_32x2",
        "i3d_nl10_r50_32x2",
    } <= names
