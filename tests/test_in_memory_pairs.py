"""experiments/in_memory_pairs.py: the in-memory clips are the generator's, a short run reports."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from nlvideo.builtin.generate import SyntheticParams, render_dataset_clip
from nlvideo.builtin.same_shape import SHAPES

_PATH = Path(__file__).resolve().parents[1] / "experiments" / "in_memory_pairs.py"
_spec = importlib.util.spec_from_file_location("in_memory_pairs", _PATH)
imp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(imp)

PARAMS = SyntheticParams(8, 4, 3, 64, 4, 4, 25, 18, 12, task="same_shape")


def test_the_clips_are_the_rendered_frames_normalised_with_their_labels():
    x, y, pairs = imp.render_split(PARAMS, "val", 4, "task")
    for i in range(4):
        name, frames, truth = render_dataset_clip(PARAMS, "val", i)
        assert y[i] == ["different", "same"].index(name)
        assert pairs[i] == "-".join(sorted(truth.shapes))
        raw = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255  # (3, T, H, W)
        np.testing.assert_allclose(x[i] * 0.225 + 0.45, raw, atol=1e-6)


def test_the_s2_shape_label_names_the_second_shape():
    _, y, _ = imp.render_split(PARAMS, "train", 8, "s2_shape")
    truths = [render_dataset_clip(PARAMS, "train", i)[2] for i in range(8)]
    assert y.tolist() == [SHAPES.index(t.shapes[1]) for t in truths]


def test_a_short_run_appends_its_curve(tmp_path):
    out = tmp_path / "r.jsonl"
    overrides = ["synthetic.num_train=16", "synthetic.num_val=8", "train.iterations=3"]
    overrides += ["train.batch_size=8", "synthetic.size=64", "synthetic.min_distance=32"]
    overrides += ["data.crop_size=64"]
    imp.main(["--out", str(out), "--eval-every", "1", *overrides])
    line = json.loads(out.read_text())
    assert [step for step, _, _ in line["curve"]] == [1, 2, 3]
    assert 0.0 <= line["held_out"] <= 1.0 and line["overrides"] == overrides
    by_pair = line["held_out_by_pair"]  # palette indices of the same_colour recipe
    assert set(by_pair) <= {"0-0", "0-1", "0-2", "1-1", "1-2", "2-2"} and by_pair
