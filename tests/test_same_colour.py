"""The same_colour task of the built-in data set: labels, colours, shapes, pixels, recipe."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from builtin_helpers import decode_rgb, smoke_run, tree_digest

from nlvideo.builtin.generate import (
    SyntheticParams,
    generate_builtin_dataset,
    render_dataset_clip,
    write_mp4,
)
from nlvideo.builtin.same_shape import (
    PALETTE,
    PALETTE_JITTER,
    render_same_shape_clip,
)
from nlvideo.config import load_config

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "builtin" / "same_colour.yaml"
TINY = {"num_train": 12, "num_val": 6, "size": 96, "min_frames": 4, "max_frames": 4}


def _params(**kw) -> SyntheticParams:
    base = {"task": "same_colour", "min_distance": 64.0, "max_distance": None}
    return SyntheticParams(24, 12, 0, 96, 4, 4, 25, 18, 12, **(base | kw))


def _truths(n: int, **kw) -> list:
    params = _params(**kw)
    return [render_dataset_clip(params, "train", i)[2] for i in range(n)]


def _palette_index(colour) -> int:
    """The palette entry a (jittered) colour was drawn from: the nearest, within the jitter."""
    distances = [np.abs(np.subtract(colour, p)).max() for p in PALETTE]
    index = int(np.argmin(distances))
    assert distances[index] <= PALETTE_JITTER + 1e-6, (colour, distances)
    return index


# --------------------------------------------------------------------------- labels, colours


def test_the_label_says_whether_the_two_palette_colours_match():
    truths = _truths(120)
    assert Counter(t.label for t in truths) == {"same": 60, "different": 60}
    for t in truths:
        c1, c2 = (_palette_index(c) for c in t.colours)
        assert (c1 == c2) == (t.label == "same")
        assert t.colours[0] != t.colours[1]  # jittered: never two identical colours


@pytest.mark.parametrize("label", ["same", "different"])
def test_each_colour_is_equally_often_first_and_second_within_a_class(label):
    truths = [t for t in _truths(120) if t.label == label]
    for k in (0, 1):
        counts = Counter(_palette_index(t.colours[k]) for t in truths)
        assert counts == dict.fromkeys(range(len(PALETTE)), 60 // len(PALETTE))


def test_the_shapes_are_nuisance_drawn_independently_of_the_label():
    truths = _truths(600)
    for label in ("same", "different"):
        pairs = Counter(t.shapes for t in truths if t.label == label)
        assert len(pairs) == 9  # every (S1, S2), equal shapes as well as different ones
        assert min(pairs.values()) >= 15  # ~33 each of 300
    same_shape = [t.shapes[0] == t.shapes[1] for t in truths]
    assert 0.2 < np.mean(same_shape) < 0.47  # ~1/3, whatever the label


def test_the_far_rule_holds_at_96_px():
    distances = [math.hypot(*np.subtract(*t.centres)) for t in _truths(200)]
    assert min(distances) >= 64.0


def test_the_shape_task_is_unchanged_by_the_colour_option():
    """compare="shape" is the default: the same_shape task's pixels stay as they were."""
    a, ta = render_same_shape_clip(5, np.random.default_rng(3))
    b, tb = render_same_shape_clip(5, np.random.default_rng(3), compare="shape")
    np.testing.assert_array_equal(a, b)
    assert ta == tb
    with pytest.raises(ValueError, match=r"compare must be one of \['shape', 'colour'\]"):
        render_same_shape_clip(5, np.random.default_rng(3), compare="size")


# --------------------------------------------------------------------------- pixels and files


def test_decoded_frames_show_c1_at_p1_then_c2_at_p2(tmp_path):
    """render -> H.264 -> decode: the pixels at p1 carry C1 in frames 0-1, those at p2 carry C2
    in frames 2-3, and each place shows the background (not the shape) in the other half."""
    params = _params()
    for index in range(12):
        _, frames, t = render_dataset_clip(params, "val", index)
        write_mp4(tmp_path / f"{index}.mp4", frames)
        decoded = decode_rgb(tmp_path / f"{index}.mp4").astype(np.float64)
        assert decoded.shape == (4, 96, 96, 3)
        for k, shown in ((0, (0, 1)), (1, (2, 3))):
            x, y = (int(v) for v in t.centres[k])
            colour = 255 * np.asarray(t.colours[k])
            for frame in range(4):
                patch = decoded[frame, y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(0)
                error = np.abs(patch - colour).max()
                if frame in shown:
                    assert error < 24, (index, frame, patch, colour)
                else:
                    assert error > 40, (index, frame, patch, colour)


def test_same_seed_gives_identical_files_and_the_task_is_its_own_cache(tmp_path):
    first = generate_builtin_dataset(tmp_path / "a", seed=2, task="same_colour", **TINY)
    again = generate_builtin_dataset(tmp_path / "b", seed=2, task="same_colour", **TINY)
    assert tree_digest(first.root) == tree_digest(again.root)
    assert first.classes == ["different", "same"]
    shapes = generate_builtin_dataset(tmp_path / "a", seed=2, task="same_shape", **TINY)
    assert shapes.root != first.root  # another parameter folder, nothing overwritten
    assert tree_digest(first.root) == tree_digest(again.root)


# --------------------------------------------------------------------------- the recipe


def test_the_recipe_trains_i3d_nl_tiny_far_apart_and_the_plain_net_with_one_key():
    nl = load_config(RECIPE)
    plain = load_config(RECIPE, ["model.name=i3d_tiny"])
    assert nl.model.name == "i3d_nl_tiny" and nl.synthetic.task == "same_colour"
    assert (nl.synthetic.size, nl.data.crop_size, nl.synthetic.min_distance) == (96, 96, 64.0)
    assert (nl.synthetic.num_train, nl.synthetic.num_val) == (2000, 400)
    assert nl.train.output_dir != plain.train.output_dir
    nl.model.name = plain.model.name
    nl.train.output_dir = plain.train.output_dir
    assert nl == plain  # everything else equal


def test_a_short_run_of_the_recipe_trains_and_evaluates(tmp_path):
    report = smoke_run(RECIPE, tmp_path)
    assert report["classes"] == ["different", "same"]
    assert sum(map(sum, report["confusion"])) == 8
