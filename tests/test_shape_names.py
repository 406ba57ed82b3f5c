"""The shape_names task: same_shape's clips, each labelled with its two shapes in order."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nlvideo.builtin.generate import SyntheticParams, generate_builtin_dataset, render_dataset_clip
from nlvideo.builtin.same_shape import PAIR_NAMES, SHAPES, pair_name
from nlvideo.data.annotations import load_video_list

TINY = {"num_train": 18, "num_val": 6, "size": 64, "min_frames": 4, "max_frames": 4}


def _params(task: str) -> SyntheticParams:
    return SyntheticParams(24, 12, 3, 64, 4, 4, 25, 18, 12, task=task, min_distance=32.0)


def test_the_nine_classes_are_every_ordered_pair_of_shapes():
    assert tuple(f"{a}_{b}" for a in SHAPES for b in SHAPES) == PAIR_NAMES
    assert len(set(PAIR_NAMES)) == 9


def test_each_clip_is_named_by_the_shapes_it_shows_s1_first():
    params = _params("shape_names")
    names = []
    for i in range(72):
        name, _, truth = render_dataset_clip(params, "train", i)
        assert name == f"{truth.shapes[0]}_{truth.shapes[1]}" == pair_name(i)
        names.append(name)
    counts = Counter(names)  # 36 "same" clips over 3 pairs, 36 "different" over 6
    assert counts == {n: (12 if n.split("_")[0] == n.split("_")[1] else 6) for n in PAIR_NAMES}


def test_the_clips_are_same_shapes_clips_frame_for_frame():
    names, shapes = _params("shape_names"), _params("same_shape")
    for i in range(12):
        a = render_dataset_clip(names, "val", i)
        b = render_dataset_clip(shapes, "val", i)
        assert np.array_equal(a[1], b[1]) and a[2] == b[2]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    root = tmp_path_factory.mktemp("shape_names") / "data"
    kw = {"seed": 5, "workers": 2, **TINY}
    return (
        generate_builtin_dataset(root, task="shape_names", **kw),
        generate_builtin_dataset(root, task="same_shape", **kw),
    )


def _files_by_index(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.mp4"))}


def test_the_written_files_are_same_shapes_byte_for_byte_in_other_folders(both):
    names, shapes = both
    assert names.root != shapes.root  # the task is part of the cache identity
    assert _files_by_index(names.root) == _files_by_index(shapes.root)


def test_the_lists_name_each_video_by_its_folder_and_the_class_file_holds_nine(both):
    names, _ = both
    classes = json.loads(names.classes_file.read_text())
    assert classes == list(PAIR_NAMES) == names.classes
    for split, count in (("train", 18), ("val", 6)):
        records, _ = load_video_list(names.root / f"{split}.txt", root=names.root, classes=classes)
        assert len(records) == count
        for r in records:
            index = int(Path(r.path).stem.split("_")[1])
            assert classes[r.label] == Path(r.path).parent.name == pair_name(index)
