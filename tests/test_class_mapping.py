"""Evaluation maps a list's classes to the checkpoint's by name; never indices across tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_TEST_VIEWS, write_checkpoint
from layouts import tiny_writer, write_ucf101

from nlvideo import pipeline
from nlvideo.cli.eval import main as eval_main

CKPT_CLASSES = ["juggling", "archery", "yodelling", "abseiling"]
LIST_CLASSES = ["abseiling", "archery", "juggling"]  # a subset, in another order
VIEWS = [*TINY_TEST_VIEWS, "data.num_clips=2", "train.device=cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mapping")
    write = tiny_writer(num_frames=8)
    rows = []
    for ci, name in enumerate(LIST_CLASSES):
        for v in range(2):
            rows.append((write(root / "videos" / f"{name}_{v}.mp4", ci, v), name))
    ckpt = write_checkpoint(root / "run" / "best.pt", CKPT_CLASSES, VIEWS)
    return root, rows, ckpt


def write_lists(folder: Path, rows, order: list[str] | None) -> Path:
    """The same videos as a name list (order None) or an index list + classes.json (order)."""
    folder.mkdir(parents=True, exist_ok=True)
    if order is None:
        lines = [f"{path},{name}" for path, name in rows]
    else:
        (folder / "classes.json").write_text(json.dumps(order))
        lines = [f"{path} {order.index(name)}" for path, name in rows]
    (folder / "list.txt").write_text("\n".join(lines) + "\n")
    return folder / "list.txt"


def summary(report) -> tuple:
    return (
        report.video_labels.tolist(),
        np.round(report.video_probs, 5).tolist(),
        report.video_top1,
        report.num_evaluated,
    )


@pytest.mark.parametrize("order", [["archery", "juggling", "abseiling"], sorted(LIST_CLASSES)])
def test_index_list_with_its_class_file_scores_like_the_name_list(data, tmp_path, order):
    _, rows, ckpt = data
    named, _ = pipeline.evaluate_checkpoint(
        ckpt, list_path=str(write_lists(tmp_path / "n", rows, None))
    )
    indexed, _ = pipeline.evaluate_checkpoint(
        ckpt, list_path=str(write_lists(tmp_path / "i", rows, order))
    )
    expected = [CKPT_CLASSES.index(name) for _, name in rows]  # the checkpoint's indices
    assert named.video_labels.tolist() == expected
    assert summary(indexed) == summary(named)


def test_class_file_can_be_passed_instead_of_lying_beside_the_list(data, tmp_path):
    _, rows, ckpt = data
    listing = write_lists(tmp_path / "i", rows, ["juggling", "abseiling", "archery"])
    moved = tmp_path / "elsewhere.json"
    (listing.parent / "classes.json").rename(moved)
    report, _ = pipeline.evaluate_checkpoint(ckpt, list_path=str(listing), class_file=str(moved))
    assert report.video_labels.tolist() == [CKPT_CLASSES.index(n) for _, n in rows]


def test_index_list_without_a_class_file_is_a_one_line_error(data, tmp_path, capsys):
    _, rows, ckpt = data
    listing = write_lists(tmp_path / "i", rows, LIST_CLASSES)
    (listing.parent / "classes.json").unlink()
    rc = eval_main(["--checkpoint", str(ckpt), "--list", str(listing), *VIEWS])
    err = capsys.readouterr().err
    assert rc == 2 and "looks like a class index but there is no class file" in err
    assert "Traceback" not in err


def test_classes_the_checkpoint_does_not_know_are_an_error_listing_them(data, tmp_path, capsys):
    _, rows, ckpt = data
    rows = [*rows, (rows[0][0], "yak shaving"), (rows[1][0], "ballet")]
    listing = write_lists(tmp_path / "n", rows, None)
    rc = eval_main(["--checkpoint", str(ckpt), "--list", str(listing)])
    err = capsys.readouterr().err
    assert rc == 2 and "2 class(es) not among the 4 known classes: 'ballet', 'yak shaving'" in err


def test_a_layout_split_is_evaluated_against_the_checkpoints_classes(tmp_path):
    ucf = ["ApplyEyeMakeup", "Archery", "BabyCrawling"]
    root = write_ucf101(tmp_path / "ucf", ucf, 3, tiny_writer())
    ckpt_classes = ["Zumba", *reversed(ucf)]  # a superset in another order
    overrides = [*VIEWS, "data.builtin=false", "data.format=ucf101", f"data.root={root}"]
    ckpt = write_checkpoint(tmp_path / "best.pt", ckpt_classes, overrides)
    report, name = pipeline.evaluate_checkpoint(ckpt, overrides=["data.split=2"])
    assert name == "ucf101_val_split2"
    testlist = (root / "ucfTrainTestlist" / "testlist02.txt").read_text().split()
    assert report.num_videos == len(testlist) == 3
    expected = [ckpt_classes.index(rel.split("/")[0]) for rel in testlist]
    assert sorted(report.video_labels.tolist()) == sorted(expected)
