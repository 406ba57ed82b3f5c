"""The same_shape task of the built-in data set: labels, shapes, distances, files, recipe."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from builtin_helpers import decode_rgb, smoke_run, tree_digest

from nlvideo.builtin.generate import (
    SyntheticParams,
    _clip_rng,
    generate_builtin_dataset,
    render_dataset_clip,
    write_mp4,
)
from nlvideo.builtin.same_shape import (
    CLASSES,
    PAIR_NAMES,
    SHAPES,
    render_same_shape_clip,
    sample_centres,
)
from nlvideo.config import load_config
from nlvideo.data.annotations import load_video_list
from nlvideo.data.dataset import VideoClipDataset

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "builtin" / "same_shape.yaml"
NAMES = RECIPE.with_name("shape_names.yaml")  # the first stage
TINY = {"num_train": 12, "num_val": 6, "size": 64, "min_frames": 4, "max_frames": 4}


def _params(**kw) -> SyntheticParams:
    base = {"task": "same_shape", "min_distance": 32.0, "max_distance": None}
    return SyntheticParams(24, 12, 0, 64, 4, 4, 25, 18, 12, **(base | kw))


def _truths(n: int, **kw) -> list:
    params = _params(**kw)
    return [render_dataset_clip(params, "train", i)[2] for i in range(n)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("same_shape") / "data"
    return generate_builtin_dataset(root, seed=5, task="same_shape", workers=2, **TINY)


# --------------------------------------------------------------------------- labels and shapes


def test_labels_are_balanced_and_name_whether_the_shapes_match():
    truths = _truths(120)
    assert Counter(t.label for t in truths) == {"same": 60, "different": 60}
    for t in truths:
        assert (t.shapes[0] == t.shapes[1]) == (t.label == "same")


@pytest.mark.parametrize("label", CLASSES)
def test_each_shape_is_equally_often_first_and_second_within_a_class(label):
    truths = [t for t in _truths(120) if t.label == label]
    for k in (0, 1):
        assert Counter(t.shapes[k] for t in truths) == dict.fromkeys(SHAPES, 20)
    if label == "different":  # every ordered pair of distinct shapes as often
        assert set(Counter(t.shapes for t in truths).values()) == {10}


def test_both_shapes_have_the_same_size_and_their_own_colour():
    for t in _truths(40):
        assert 6.0 <= t.radius <= 10.0
        assert t.colours[0] != t.colours[1]


# --------------------------------------------------------------------------- distances


def _distance(t) -> float:
    (x1, y1), (x2, y2) = t.centres
    return math.hypot(x1 - x2, y1 - y2)


def test_the_far_rule_keeps_the_shapes_at_least_min_distance_apart():
    distances = [_distance(t) for t in _truths(200)]
    assert min(distances) >= 32.0
    assert max(distances) > 45.0  # no hidden upper bound at the default


def test_a_distance_band_is_honoured_and_shapes_stay_inside_the_frame():
    for t in _truths(100, min_distance=16.0, max_distance=24.0):
        assert 16.0 <= _distance(t) <= 24.0
        for x, y in t.centres:
            assert t.radius < x < 64 - t.radius and t.radius < y < 64 - t.radius


def test_the_near_control_puts_s2_exactly_where_s1_was():
    truths = _truths(60, min_distance=0.0, max_distance=0.0)
    assert all(t.centres[0] == t.centres[1] for t in truths)
    # only the positions change: labels and shape pairs are those of the far clips
    far = _truths(60)
    assert [(t.label, t.shapes) for t in truths] == [(t.label, t.shapes) for t in far]


def test_impossible_distances_are_rejected_with_the_values(tmp_path):
    with pytest.raises(ValueError, match=r"min_distance 90\.0 px does not fit a 64x64 frame"):
        generate_builtin_dataset(tmp_path, task="same_shape", min_distance=90.0, **TINY)
    with pytest.raises(ValueError, match=r"0 <= min_distance <= max_distance, got 32\.0, 8\.0"):
        generate_builtin_dataset(
            tmp_path, task="same_shape", min_distance=32.0, max_distance=8.0, **TINY
        )
    with pytest.raises(ValueError, match="no two centres"):
        sample_centres(_clip_rng(0, 0, 0), size=64, radius=10, min_distance=60, max_distance=61)


def test_config_mistakes_name_the_synthetic_key():
    with pytest.raises(ValueError, match=r"synthetic\.max_distance: expected null or >= synthe"):
        load_config(RECIPE, ["synthetic.max_distance=8"])
    with pytest.raises(ValueError, match=r"synthetic\.min_distance: expected >= 0, got -1"):
        load_config(RECIPE, ["synthetic.min_distance=-1"])
    with pytest.raises(ValueError, match=r"synthetic\.task: expected one of \['motion', 'same_"):
        load_config(RECIPE, ["synthetic.task=colour"])


def test_an_unknown_task_is_rejected_with_the_choices(tmp_path):
    choices = r"\['motion', 'same_shape', 'same_colour', 'shape_names'\]"
    with pytest.raises(ValueError, match=rf"task must be one of {choices}"):
        generate_builtin_dataset(tmp_path, task="colour", **TINY)


# --------------------------------------------------------------------------- pixels and files


def _naive_coverage(shape: str, centre, radius: float, size: int) -> np.ndarray:
    """(H, W) coverage of a shape from 4x4 point samples per pixel: a rasteriser without PIL."""
    offsets = (np.arange(4) + 0.5) / 4
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    ys = yy[..., None, None] + offsets[:, None]  # (H, W, 4, 1) sample rows
    xs = xx[..., None, None] + offsets[None, :]  # (H, W, 1, 4) sample columns
    dx, dy = (xs - centre[0]) / radius, (ys - centre[1]) / radius
    if shape == "disk":
        inside = dx**2 + dy**2 <= 1
    elif shape == "square":
        inside = (np.abs(dx) <= 0.8) & (np.abs(dy) <= 0.8)
    else:  # triangle (0, -1), (0.9, 0.8), (-0.9, 0.8): above the base, inside both slants
        inside = (dy <= 0.8) & (dy >= -1 + 2 * np.abs(dx))
    return inside.mean(axis=(2, 3))


def _coverage(frame: np.ndarray, background: np.ndarray, colour) -> np.ndarray:
    """Estimated coverage of ``colour`` over a known background: a projection per pixel."""
    f, b = frame.astype(np.float64), background.astype(np.float64)
    c = 255 * np.asarray(colour)
    direction = c - b  # (H, W, 3)
    alpha = ((f - b) * direction).sum(-1) / np.maximum((direction**2).sum(-1), 1.0)
    return np.clip(alpha, 0, 1)


def _errors(frame, background, truth, k: int) -> dict[str, float]:
    """Per shape: mean |coverage - naive coverage| near the shape's intended centre."""
    size = frame.shape[0]
    centre, radius = truth.centres[k], truth.radius
    alpha = _coverage(frame, background, truth.colours[k])
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    region = np.hypot(xx - centre[0], yy - centre[1]) < 1.6 * radius
    return {
        shape: float(np.abs(alpha - _naive_coverage(shape, centre, radius, size))[region].mean())
        for shape in SHAPES
    }


def test_decoded_frames_show_s1_then_s2_at_their_places(tmp_path):
    """render -> H.264 -> decode: frames 0-1 show S1 at p1, frames 2-3 S2 at p2.

    The shapes are >= 32 px apart, so frames 2-3 show the background around p1 and frames
    0-1 the background around p2; against it, the coverage of each shape's colour must match
    the intended shape, drawn by a naive rasteriser at the intended place, best of the three.
    """
    params = _params()
    for index in range(18):
        _, frames, t = render_dataset_clip(params, "val", index)
        write_mp4(tmp_path / f"{index}.mp4", frames)
        decoded = decode_rgb(tmp_path / f"{index}.mp4")
        assert decoded.shape == (4, 64, 64, 3)
        for shown, background, k in ((0, 2, 0), (1, 3, 0), (2, 0, 1), (3, 1, 1)):
            errors = _errors(decoded[shown], decoded[background], t, k)
            found = min(errors, key=errors.get)
            assert found == t.shapes[k], (index, shown, errors)
            assert errors[found] < 0.12, (index, shown, errors)


def test_decoded_near_control_shows_s2_in_s1s_place(tmp_path):
    """Near control: the pixels at p take S1's colour in frames 0-1 and S2's in frames 2-3."""
    params = _params(min_distance=0.0, max_distance=0.0)
    for index in range(12):
        _, frames, t = render_dataset_clip(params, "val", index)
        write_mp4(tmp_path / f"{index}.mp4", frames)
        decoded = decode_rgb(tmp_path / f"{index}.mp4").astype(np.float64)
        x, y = (int(v) for v in t.centres[0])
        for shown, k in ((0, 0), (1, 0), (2, 1), (3, 1)):
            patch = decoded[shown, y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(0)
            assert np.abs(patch - 255 * np.asarray(t.colours[k])).max() < 24, (index, shown)


def test_same_seed_gives_identical_files_and_another_seed_other_files(tiny, tmp_path):
    again = generate_builtin_dataset(tmp_path / "again", seed=5, task="same_shape", **TINY)
    assert tree_digest(again.root) == tree_digest(tiny.root)
    other = generate_builtin_dataset(tmp_path / "other", seed=6, task="same_shape", **TINY)
    assert (
        tree_digest(other.root)["train/same/train_00001.mp4"]
        != (tree_digest(tiny.root)["train/same/train_00001.mp4"])
    )


def test_the_lists_hold_two_balanced_classes(tiny):
    assert tiny.classes == ["different", "same"]
    for path in (tiny.train_list, tiny.val_list):
        records, _ = load_video_list(path, root=tiny.root, classes=tiny.classes)
        labels = [r.label for r in records]
        assert labels.count(0) == labels.count(1) == len(records) // 2


def test_the_task_and_distances_are_part_of_the_cache_identity(tiny, tmp_path):
    root = tmp_path / "data"
    far = generate_builtin_dataset(root, seed=5, task="same_shape", **TINY)
    before = (far.root / "val" / "same" / "val_00001.mp4").read_bytes()
    near = generate_builtin_dataset(
        root, seed=5, task="same_shape", min_distance=0, max_distance=0, **TINY
    )
    assert (near.root / "val" / "same" / "val_00001.mp4").read_bytes() != before


def test_the_recipes_clips_are_the_whole_video_in_order(tiny):
    """4 frames at stride 1 of a 4-frame video: frames 0, 1, 2, 3 in training and testing."""
    cfg = load_config(RECIPE)
    records, _ = load_video_list(tiny.val_list, root=tiny.root, classes=tiny.classes)
    options = {"num_frames": cfg.data.num_frames, "stride": cfg.data.stride, "short_side": None}
    decoded = decode_rgb(Path(records[0].path))
    for mode in ("train", "test"):
        dataset = VideoClipDataset(records, mode=mode, num_clips=cfg.data.num_clips, **options)
        clip = dataset[0].clips  # (V, 3, T, H, W)
        assert clip.shape[0] == 1
        np.testing.assert_array_equal(clip[0].permute(1, 2, 3, 0).numpy(), decoded)


# --------------------------------------------------------------------------- the recipe


def test_the_recipe_trains_i3d_nl_tiny_and_switches_to_the_plain_net_with_one_key():
    nl = load_config(RECIPE)
    plain = load_config(RECIPE, ["model.name=i3d_tiny"])
    assert nl.model.name == "i3d_nl_tiny" and nl.synthetic.task == "same_shape"
    assert (nl.synthetic.size, nl.data.crop_size, nl.synthetic.min_distance) == (96, 96, 64.0)
    assert (nl.synthetic.num_train, nl.synthetic.num_val) == (2000, 400)
    assert (nl.optim.name, nl.optim.lr, nl.optim.weight_decay) == ("adamw", 0.002, 0.05)
    assert (nl.train.batch_size, nl.train.iterations) == (32, 1200)
    assert nl.train.output_dir != plain.train.output_dir  # no resume of the other's run
    for cfg in (nl, plain):  # each fine-tunes its own net's names stage
        names = load_config(NAMES, [f"model.name={cfg.model.name}"])
        assert cfg.model.pretrained == f"{names.train.output_dir}/last.pt"
    nl.model.name = plain.model.name
    nl.train.output_dir = plain.train.output_dir
    nl.model.pretrained = plain.model.pretrained
    assert nl == plain  # everything else equal


def test_the_names_stage_trains_on_the_same_clips_with_the_same_network():
    names, same = load_config(NAMES, ["train.seed=3"]), load_config(RECIPE, ["train.seed=3"])
    assert names.synthetic.task == "shape_names" and names.train.iterations == 2400
    assert same.model.pretrained == "runs/shape_names/i3d_nl_tiny_seed3/last.pt"
    assert names.data == same.data and names.optim == same.optim
    assert (names.model.name, names.model.dropout) == (same.model.name, same.model.dropout)
    names.synthetic.task, names.synthetic.root = same.synthetic.task, same.synthetic.root
    assert names.synthetic == same.synthetic  # the same seed, size and distances: the same clips


def test_a_short_run_of_both_stages_trains_and_evaluates(tmp_path):
    first = smoke_run(NAMES, tmp_path / "names")
    assert first["classes"] == list(PAIR_NAMES)
    stage_one = tmp_path / "names" / "run" / "last.pt"
    report = smoke_run(RECIPE, tmp_path / "same", f"model.pretrained={stage_one}")
    assert report["classes"] == ["different", "same"]
    assert sum(map(sum, report["confusion"])) == 8
    assert (tmp_path / "same" / "run" / "last.pt").is_file()


def test_render_same_shape_clip_is_a_pure_function_of_its_generator():
    a, ta = render_same_shape_clip(3, np.random.default_rng(1))
    b, tb = render_same_shape_clip(3, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert ta == tb
