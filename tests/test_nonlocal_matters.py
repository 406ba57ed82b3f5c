"""experiments/nonlocal_matters.py: its arms are valid recipes, runs resume, the statistics."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from nlvideo.config import load_config
from nlvideo.models import build_model
from nlvideo.models.global_context import GlobalContextBlock
from nlvideo.models.non_local import NLBlockND

_PATH = Path(__file__).resolve().parents[1] / "experiments" / "nonlocal_matters.py"
_spec = importlib.util.spec_from_file_location("nonlocal_matters", _PATH)
nm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nm)


@pytest.mark.parametrize("arm", nm.ARMS)
def test_every_arm_is_a_valid_config_of_the_recipe(arm, tmp_path):
    cfg = load_config(nm.RECIPE, nm.run_overrides(arm, 3, tmp_path, tmp_path / "data", []))
    tasks = {"shape_": "same_shape", "names_": "shape_names"}
    assert cfg.synthetic.task == tasks.get(arm[: arm.find("_") + 1], "same_colour")
    assert cfg.synthetic.seed == cfg.train.seed == 3
    assert cfg.data.crop_size == cfg.synthetic.size  # the whole frame, positions intact


def test_nl_and_plain_arms_differ_only_in_the_model_and_the_run_folder(tmp_path):
    nl = load_config(nm.RECIPE, nm.run_overrides("nl", 0, tmp_path, tmp_path / "d", []))
    plain = load_config(nm.RECIPE, nm.run_overrides("plain", 0, tmp_path, tmp_path / "d", []))
    assert (nl.model.name, plain.model.name) == ("i3d_nl_tiny", "i3d_tiny")
    assert nl.synthetic == plain.synthetic  # the same data set (and cache folder)
    nl.model.name, nl.train.output_dir = plain.model.name, plain.train.output_dir
    assert nl == plain


@pytest.mark.parametrize("net", ["nl", "plain"])
def test_a_same_shape_arm_fine_tunes_its_names_run_of_the_same_seed_on_the_same_clips(
    net, tmp_path
):
    second = nm.run_overrides(f"shape_{net}", 3, tmp_path, tmp_path / "d", [])
    first = nm.run_overrides(f"names_{net}", 3, tmp_path, tmp_path / "d", [])
    names, same = load_config(nm.RECIPE, first), load_config(nm.RECIPE, second)
    assert same.model.pretrained == f"{names.train.output_dir}/last.pt"
    assert names.model == load_config(nm.RECIPE, [*second, "model.pretrained=''"]).model
    assert (names.train.iterations, same.train.iterations) == (2400, 1200)
    names.synthetic.task, names.synthetic.root = same.synthetic.task, same.synthetic.root
    assert names.synthetic == same.synthetic  # same seed, size and distances: the same clips


@pytest.mark.parametrize(("net", "name"), [("nl", "i3d_nl_tiny"), ("plain", "i3d_tiny")])
@pytest.mark.parametrize(("arm", "recipe"), [("names", "shape_names"), ("shape", "same_shape")])
def test_the_two_stage_arms_train_what_the_readmes_recipes_train(net, name, arm, recipe, tmp_path):
    ran = load_config(nm.RECIPE, nm.run_overrides(f"{arm}_{net}", 3, tmp_path, tmp_path, []))
    recipe = nm.RECIPE.with_name(f"{recipe}.yaml")
    readme = load_config(recipe, [f"model.name={name}", "synthetic.seed=3", "train.seed=3"])
    for cfg in (ran, readme):  # where each writes and reads its files
        cfg.synthetic.root = cfg.train.output_dir = cfg.model.pretrained = ""
        cfg.model.pretrained_recipe, cfg.train.progress = "", True
    assert ran == readme


def test_a_second_stage_runs_after_its_first_even_when_only_it_is_asked_for(tmp_path):
    calls = []

    def fake_train(overrides):
        calls.append(overrides)
        return {"video_top1": 0.9, "seconds": 1.0, "train_acc": 0.9}

    nm.run_all(["shape_plain"], [0], tmp_path, train=fake_train)
    tasks = [next(o for o in c if o.startswith("synthetic.task=")) for c in calls]
    assert tasks == ["synthetic.task=shape_names", "synthetic.task=same_shape"]
    output_dir = next(o for o in calls[0] if o.startswith("train.output_dir="))
    assert f"model.pretrained={output_dir.partition('=')[2]}/last.pt" in calls[1]
    nm.run_all(["shape_plain"], [0], tmp_path, train=fake_train)
    assert len(calls) == 2  # both done: nothing trains again


def test_the_near_control_and_the_far_rule_use_their_own_data_folders(tmp_path):
    near = nm.run_overrides("nl_near", 0, tmp_path, tmp_path / "d", [])
    far = nm.run_overrides("nl", 0, tmp_path, tmp_path / "d", [])
    root = [o for o in near + far if o.startswith("synthetic.root=")]
    assert len(set(root)) == 2


def test_runs_already_in_the_results_are_skipped(tmp_path):
    calls = []

    def fake_train(overrides):
        calls.append(overrides)
        return {"video_top1": 0.5 + 0.1 * len(calls), "seconds": 1.0, "train_acc": 0.9}

    nm.run_all(["nl", "plain"], [0, 1], tmp_path, train=fake_train)
    assert len(calls) == 4
    nm.run_all(["nl", "plain"], [0, 1, 2], tmp_path, train=fake_train)
    assert len(calls) == 6  # only seed 2 was new
    nm.run_all(["nl"], [0], tmp_path, extra=["optim.lr=0.001"], train=fake_train)
    assert len(calls) == 7  # other overrides: another run, in another folder
    assert calls[-1][-2] != calls[0][-2]
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [(json.loads(x)["arm"], json.loads(x)["seed"]) for x in lines][:4] == [
        ("nl", 0), ("plain", 0), ("nl", 1), ("plain", 1)
    ]  # fmt: skip


def test_a_run_is_known_by_what_it_trains_not_by_its_arm_or_folders(tmp_path, monkeypatch):
    monkeypatch.setitem(nm.ARMS, "nl_again", ("the recipe as it is", ["train.seed=9"]))
    calls = []

    def fake_train(overrides):
        calls.append(overrides)
        return {"video_top1": 0.9, "seconds": 1.0}

    nm.run_all(["nl"], [0], tmp_path, train=fake_train)
    nm.run_all(["nl_again"], [0], tmp_path, data_root=tmp_path / "elsewhere", train=fake_train)
    assert len(calls) == 1  # the same training (the seed is set after the arm's overrides)
    assert nm.config_key(["train.iterations=7"]) != nm.config_key([])
    assert nm.config_key(["train.output_dir=x", "synthetic.root=y"]) == nm.config_key([])


def test_a_fine_tuned_run_and_one_from_scratch_of_the_same_config_are_different_runs(tmp_path):
    # shape_nl_64 fine-tunes names_nl_64; shape_scratch_nl trains the same config from scratch
    assert nm.config_key(nm.training_overrides("shape_nl_64", 0)) == nm.config_key(
        nm.training_overrides("shape_scratch_nl", 0)
    )
    calls = []

    def fake_train(overrides):
        calls.append(overrides)
        tuned = any(o.startswith("model.pretrained=") for o in overrides)
        return {"video_top1": 0.99 if tuned else 0.5, "seconds": 1.0}

    results = nm.run_all(["shape_nl_64"], [0], tmp_path, train=fake_train)
    assert len(calls) == 2 and results[-1]["first_stage"] == nm.run_key("names_nl_64")
    rows = nm.summary_tables(results).splitlines()
    assert not any(row.startswith("| shape_scratch_nl |") for row in rows)
    results = nm.run_all(["shape_scratch_nl"], [0], tmp_path, train=fake_train)
    assert len(calls) == 3  # not "done already (as shape_nl_64)"
    rows = nm.summary_tables(results).splitlines()
    assert "| 0: 99.0 |" in next(row for row in rows if row.startswith("| shape_nl_64 |"))
    assert "| 0: 50.0 |" in next(row for row in rows if row.startswith("| shape_scratch_nl |"))


def test_a_second_stage_is_another_run_when_its_first_stage_trains_otherwise(monkeypatch):
    own, before = nm.config_key(nm.training_overrides("shape_nl", 0)), nm.run_key("shape_nl")
    what, overrides = nm.ARMS["names_nl"]
    monkeypatch.setitem(nm.ARMS, "names_nl", (what, [*overrides, "optim.lr=0.001"]))
    assert nm.config_key(nm.training_overrides("shape_nl", 0)) == own  # its own config as it was
    assert nm.run_key("shape_nl") != before


def test_the_summary_counts_a_run_for_every_arm_that_trains_it_and_leaves_out_old_recipes(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(nm.ARMS, "nl_again", ("the recipe as it is", []))
    results = nm.run_all(
        ["nl", "plain"], [0], tmp_path, train=lambda o: {"video_top1": 0.75, "seconds": 1.0}
    )
    results[1]["config"] = "0123456789ab"  # the plain run of an earlier recipe
    table = nm.summary_tables(results)
    rows = [line for line in table.splitlines() if line.startswith("| nl")]
    assert [row.split(" | ")[0] for row in rows] == ["| nl", "| nl_again"]
    assert all("0: 75.0" in row for row in rows)
    assert not any(line.startswith("| plain |") for line in table.splitlines())
    assert "Left out, trained under another recipe or arm definition: plain seed 0." in table


def test_the_summary_lists_every_seed_the_take_off_rate_and_the_gap():
    keys = {"nl": "nl-key", "plain": "plain-key"}
    results = [
        {"arm": "nl", "seed": s, "video_top1": a, "seconds": 60.0, "train_acc": 1.0, "params": 9}
        for s, a in enumerate([0.98, 0.99, 0.48, 1.0])
    ] + [
        {"arm": "plain", "seed": s, "video_top1": a, "seconds": 30.0, "train_acc": 0.8}
        for s, a in enumerate([0.51, 0.50, 0.55])
    ]
    for r in results:
        r["config"] = keys[r["arm"]]
    table = nm.summary_tables(results, key_of=lambda arm, extra: keys.get(arm, arm))
    nl_row = next(line for line in table.splitlines() if line.startswith("| nl |"))
    assert "0: 98.0 / 1: 99.0 / 2: 48.0 / 3: 100.0" in nl_row
    assert "3/4" in nl_row and "| 60 |" in nl_row
    assert "| 96 px, >= 64 px apart | 86.2 (n=4) | 52.0 (n=3) |" in table
    assert "Left out" not in table


def test_the_intervals_equal_scipys():
    stats = pytest.importorskip("scipy.stats")
    values = [0.98, 0.99, 0.48, 1.0, 0.81]
    mean, half = nm.mean_interval(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    assert mean - half == pytest.approx(lo, abs=1e-3) and mean + half == pytest.approx(hi, abs=1e-3)
    a, b = [0.98, 0.99, 0.48, 1.0, 0.81], [0.51, 0.50, 0.55]
    gap, half = nm.gap_interval(a, b)
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    # the table rounds Welch's degrees of freedom down: a slightly wider (conservative) interval
    assert gap - half <= welch.low + 1e-9 and gap + half >= welch.high - 1e-9
    assert half == pytest.approx((welch.high - welch.low) / 2, rel=0.15)


def test_the_wilson_interval_of_a_rate():
    assert nm.wilson(9, 10) == pytest.approx((0.5958, 0.9821), abs=1e-4)
    assert nm.wilson(0, 5)[0] == 0.0
    assert all(math.isnan(x) for x in nm.wilson(0, 0))


class _CraftedNL(NLBlockND):
    """An NL block whose map is given: one-hot on ``hot[n] = (query, key)``, else uniform."""

    def __init__(self, hot):
        super().__init__(3, 2, sub_sample=True, pool_size=(1, 2, 2))
        self.hot = hot

    def forward_reference(self, x):
        n, _, t, h, w = x.shape
        attention = torch.full((n, t * h * w, t * (h // 2) * (w // 2)), 1 / (t * h * w // 4))
        for i, (query, key) in enumerate(self.hot):
            attention[i, query] = 0
            attention[i, query, key] = 1
        return x, attention


def _box_index(point, t, grid, cell):
    """Flat index of the (t, row, column) cell of side ``cell`` whose box holds ``point``."""
    for row in range(grid):
        for col in range(grid):
            if (
                col * cell <= point[0] < (col + 1) * cell
                and row * cell <= point[1] < (row + 1) * cell
            ):
                return (t * grid + row) * grid + col
    raise AssertionError(point)


def test_attention_on_s1_reads_the_query_at_s2_and_the_keys_at_s1():
    centres = [((3.5, 12.2), (14.9, 1.0)), ((8.0, 8.0), (0.5, 15.5))]
    # 16x16 pixels, 2 time steps; queries are pixels, keys 2x2-pixel cells
    hot = [(_box_index(p2, 1, 16, 1), _box_index(p1, 0, 8, 2)) for p1, p2 in centres]
    model = torch.nn.Sequential(_CraftedNL(hot)).eval()
    found = nm.attention_on_s1(model, torch.zeros(2, 3, 2, 16, 16), centres, size=16)
    assert found == {"0": (pytest.approx(1.0), pytest.approx(2 / 128))}
    wrong = [(q + 1, k) for q, k in hot]  # the map of another query: chance only
    model = torch.nn.Sequential(_CraftedNL(wrong)).eval()
    share, chance = nm.attention_on_s1(model, torch.zeros(2, 3, 2, 16, 16), centres, size=16)["0"]
    assert share == pytest.approx(chance)


def test_a_uniform_map_puts_chance_on_s1():
    model = build_model("i3d_nl_tiny", num_classes=2, nl_block="global_context").eval()
    for block in model.modules():
        if isinstance(block, GlobalContextBlock):
            torch.nn.init.zeros_(block.key.weight)  # equal logits: a uniform map
    centres = [((12.0, 40.0), (50.0, 10.0))]
    found = nm.attention_on_s1(model, torch.randn(1, 3, 4, 64, 64), centres, size=64)
    assert set(found) == {"blocks.3.non_local.0", "blocks.4.non_local.0"}
    for share, chance in found.values():
        assert share == pytest.approx(chance)
    assert found["blocks.3.non_local.0"][1] == pytest.approx(2 / (2 * 8 * 8))


def test_runs_with_extra_overrides_get_a_row_of_their_own(tmp_path):
    def fake_train(overrides):
        return {"video_top1": 0.9 if "optim.lr=0.001" in overrides else 0.5, "seconds": 1.0}

    nm.run_all(["nl"], [0, 1], tmp_path, train=fake_train)
    results = nm.run_all(["nl"], [0], tmp_path, extra=["optim.lr=0.001"], train=fake_train)
    table = nm.summary_tables(results)
    rows = [line for line in table.splitlines() if line.startswith("| nl")]
    assert len(rows) == 2
    assert "0: 50.0 / 1: 50.0" in rows[0]
    assert rows[1].startswith("| nl + optim.lr=0.001 | i3d_nl_tiny") and "0: 90.0 |" in rows[1]


def test_extra_overrides_that_change_nothing_get_no_row_of_their_own(tmp_path):
    def fake_train(overrides):
        return {"video_top1": 0.7, "seconds": 1.0}

    # the recipe's own batch size: the same training as the plain arm, so no second run either
    nm.run_all(["nl"], [0], tmp_path, train=fake_train)
    results = nm.run_all(["nl"], [0, 1], tmp_path, extra=["train.batch_size=32"], train=fake_train)
    assert len(results) == 2
    rows = [line for line in nm.summary_tables(results).splitlines() if line.startswith("| nl")]
    assert len(rows) == 1 and "0: 70.0 / 1: 70.0" in rows[0]


def test_the_gap_table_compares_arms_under_the_same_extra_overrides_only(tmp_path):
    def fake_train(overrides):
        short = "train.iterations=300" in overrides
        nl = "model.name=i3d_tiny" not in overrides
        return {"video_top1": (0.9 if short else 1.0) if nl else 0.5, "seconds": 1.0}

    nm.run_all(["nl", "plain"], [0, 1], tmp_path, train=fake_train)
    results = nm.run_all(
        ["nl", "plain"], [0, 1], tmp_path, extra=["train.iterations=300"], train=fake_train
    )
    table = nm.summary_tables(results)
    assert "| 96 px, >= 64 px apart | 100.0 (n=2) | 50.0 (n=2) |" in table
    assert "| 96 px, >= 64 px apart + train.iterations=300 | 90.0 (n=2) | 50.0 (n=2) |" in table
