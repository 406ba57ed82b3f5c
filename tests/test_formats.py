"""Data layouts (data.format): each read from a tree the test writes; classes are names."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from layouts import (
    tiny_writer,
    write_folder,
    write_hmdb51,
    write_kinetics,
    write_ssv2,
    write_ucf101,
)

from nlvideo.data.annotations import AnnotationError, VideoRecord
from nlvideo.data.dataset import VideoClipDataset
from nlvideo.data.formats import FORMATS, LayoutOptions, detect, read_layout
from nlvideo.data.formats.splits import load_splits, write_splits

UCF = ["ApplyEyeMakeup", "Archery", "BabyCrawling"]
HMDB = ["brush_hair", "cartwheel"]
SSV2 = ["Putting [something] on a surface", "Pushing [something] from left to right"]
K400 = ["abseiling", "air drumming", "juggling balls"]
WRITE = tiny_writer()


def options(root: Path, **kw) -> LayoutOptions:
    return LayoutOptions(root=root, **kw)


def decodes(path: str, backend: str = "pyav") -> bool:
    ds = VideoClipDataset(
        [VideoRecord(path, 0, "v")],
        mode="test",
        num_frames=4,
        stride=1,
        num_clips=1,
        short_side=None,
        backend=backend,
    )
    item = ds[0]
    return item.failure is None and item.clips.shape[0] == 1


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory) -> Path:
    return write_ucf101(tmp_path_factory.mktemp("ucf"), UCF, 6, WRITE)


# ----------------------------------------------------------------------------- ucf101
def test_ucf101_labels_are_the_one_based_class_names_and_testlist_labels_come_from_folders(
    ucf_root,
):
    data = read_layout("ucf101", options(ucf_root, split=1))
    assert data.classes == UCF  # classInd.txt order, not "1 ApplyEyeMakeup"
    for record in data.train + data.val:
        assert record.label == Path(record.path).parent.name  # no shift by one
        assert Path(record.path).is_file()
    groups = {int(Path(r.path).stem.split("_g")[1][:2]) for r in data.val}
    assert groups == {2, 5}  # (g + 1) % 3 == 0
    assert len(data.train) == 3 * 4 and len(data.val) == 3 * 2


@pytest.mark.parametrize("split", [1, 2, 3])
def test_ucf101_split_selects_its_lists(ucf_root, split):
    data = read_layout("ucf101", options(ucf_root, split=split))
    groups = {int(Path(r.path).stem.split("_g")[1][:2]) for r in data.val}
    assert all((g + split) % 3 == 0 for g in groups) and groups


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_ucf101_avi_videos_decode(ucf_root, backend):
    data = read_layout("ucf101", options(ucf_root))
    assert data.train[0].path.endswith(".avi") and decodes(data.train[0].path, backend)


def test_ucf101_trainlist_without_its_class_file_is_an_error(ucf_root, tmp_path):
    lists = ucf_root / "ucfTrainTestlist"
    (tmp_path / "trainlist01.txt").write_text((lists / "trainlist01.txt").read_text())
    (tmp_path / "val.txt").write_text((lists / "trainlist01.txt").read_text())
    opts = options(
        ucf_root / "UCF-101",
        train_list=str(tmp_path / "trainlist01.txt"),
        val_list=str(tmp_path / "val.txt"),
    )
    with pytest.raises(AnnotationError, match="looks like a class index"):
        read_layout("list", opts)


def test_a_layouts_bad_rows_are_one_error_like_a_lists_or_skipped_into_the_sink(tmp_path):
    from nlvideo.data.formats.ucf101 import read_test_list

    listing = tmp_path / "testlist01.txt"
    listing.write_text("".join(f"Zebra/v_Zebra_g{i:02d}_c01.avi\n" for i in range(1, 13)))
    with pytest.raises(AnnotationError) as caught:
        read_test_list(listing, tmp_path, ["Yak"], None)
    head, *rows = str(caught.value).splitlines()
    assert head == f"12 bad row(s) in {listing}:"
    assert rows[0] == f"  {listing}:1: folder 'Zebra' is not a class of classInd.txt"
    assert len(rows) == 11 and rows[-1] == "  ... and 2 more"  # as parse_video_list's
    sink = []
    assert read_test_list(listing, tmp_path, ["Yak"], sink) == []
    assert [p.where for p in sink] == [f"{listing}:{i}" for i in range(1, 13)]


# ----------------------------------------------------------------------------- hmdb51
@pytest.mark.parametrize("sub", ["", "hmdb51_org"])
def test_hmdb51_flags_give_train_and_test_and_zero_is_unused(tmp_path, sub):
    root = write_hmdb51(tmp_path, HMDB, 6, WRITE, sub=sub)
    data = read_layout("hmdb51", options(root, split=2))
    assert data.classes == HMDB  # two classes, not the flags 0/1/2
    names = lambda records: sorted(Path(r.path).name for r in records)  # noqa: E731
    assert names(data.val) == sorted(f"{c}_clip_{v}.avi" for c in HMDB for v in (0, 3))
    assert names(data.train) == sorted(f"{c}_clip_{v}.avi" for c in HMDB for v in (1, 2, 5))
    assert all(Path(r.path).is_file() and r.label in r.path for r in data.train + data.val)
    assert decodes(data.val[0].path, "decord")


# ----------------------------------------------------------------------------- ssv2
@pytest.mark.parametrize("prefix", ["", "something-something-v2-"])
def test_ssv2_labels_are_templates_without_brackets_and_videos_webm(tmp_path, prefix):
    root = write_ssv2(tmp_path, SSV2, 4, WRITE)
    for name in ("labels", "train", "validation"):
        (root / "labels" / f"{name}.json").rename(root / "labels" / f"{prefix}{name}.json")
    data = read_layout("ssv2", options(root))
    assert data.classes == [
        "Putting something on a surface",
        "Pushing something from left to right",
    ]
    assert {r.label for r in data.train} == set(data.classes)
    assert len(data.train) == 2 * 2 and len(data.val) == 2 * 2
    assert all(Path(r.path).is_file() and r.path.endswith(".webm") for r in data.val)
    assert decodes(data.val[0].path, "decord") and decodes(data.val[0].path, "pyav")


# ----------------------------------------------------------------------------- kinetics
def test_kinetics_root_alone_finds_validate_csv_and_the_videos(tmp_path):
    root = write_kinetics(tmp_path / "k400", K400, 4, WRITE)
    splits = load_splits("kinetics", options(root))
    assert splits.classes == K400
    assert all(Path(r.path).is_file() for r in splits.train + splits.val)
    assert {r.path.split("/")[-3] for r in splits.val} == {"val"}
    assert [K400[r.label] for r in splits.val] == [Path(r.path).parent.name for r in splits.val]


def test_kinetics_val_label_missing_from_train_is_an_error_naming_it(tmp_path):
    root = write_kinetics(tmp_path / "k400", K400[:2], 3, WRITE, val_extra="yodelling")
    with pytest.raises(
        AnnotationError, match="validation labels with no training video: 'yodelling'"
    ):
        load_splits("auto", options(root))


def test_skip_bad_rows_counts_and_lists_them_instead(tmp_path):
    root = write_kinetics(tmp_path / "k400", K400[:2], 3, WRITE, val_extra="yodelling")
    csv = root / "annotations" / "train.csv"
    csv.write_text(csv.read_text() + "abseiling,broken,ten,20,train\n")
    with pytest.raises(AnnotationError, match="time_start/time_end are not numbers"):
        load_splits("kinetics", options(root))
    splits = load_splits("kinetics", options(root), skip_bad_rows=True)
    assert sorted(p.kind for p in splits.skipped) == ["malformed", "unknown_label"]
    assert all(K400[r.label] != "yodelling" for r in splits.val) and splits.classes == K400[:2]
    write_splits(splits, tmp_path / "run" / "data")
    listed = (tmp_path / "run" / "skipped_rows.txt").read_text().splitlines()
    assert len(listed) == 2 and any("yodelling" in line for line in listed)


# ----------------------------------------------------------------------------- folder
def test_folder_split_is_stratified_deterministic_and_written_as_lists(tmp_path):
    root = write_folder(tmp_path / "mine", ["cat", "dog", "eel"], 5, WRITE, ext=[".mp4", ".mkv"])
    first = load_splits("folder", options(root, val_fraction=0.2, seed=3))
    again = load_splits("folder", options(root, val_fraction=0.2, seed=3))
    other = load_splits("folder", options(root, val_fraction=0.2, seed=4))
    assert first == again and first.val != other.val
    assert sorted(r.label for r in first.val) == [0, 1, 2]  # one of 5 per class
    assert sorted(r.label for r in first.train) == [0] * 4 + [1] * 4 + [2] * 4
    assert not {r.path for r in first.train} & {r.path for r in first.val}
    folder = write_splits(first, tmp_path / "run" / "data")
    reread = load_splits(
        "auto",
        options(None, train_list=str(folder / "train.txt"), val_list=str(folder / "val.txt")),
    )
    pairs = lambda records: [(r.path, r.label) for r in records]  # noqa: E731
    assert reread.classes == first.classes
    assert pairs(reread.val) == pairs(first.val) and pairs(reread.train) == pairs(first.train)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_folder_mkv_and_mp4_decode(tmp_path, backend):
    root = write_folder(tmp_path / "mine", ["a", "b"], 2, WRITE, ext=[".mp4", ".mkv"])
    data = read_layout("folder", options(root))
    paths = sorted(r.path for r in data.train + data.val)
    assert {Path(p).suffix for p in paths} == {".mp4", ".mkv"}
    assert all(decodes(p, backend) for p in paths)


def test_folder_class_without_videos_is_an_error_naming_it(tmp_path):
    root = write_folder(tmp_path / "mine", ["a", "b"], 2, WRITE, ext=[".mp4"])
    (root / "zebra").mkdir()
    with pytest.raises(ValueError, match="zebra"):
        read_layout("folder", options(root))


# ----------------------------------------------------------------------------- auto
@pytest.mark.parametrize(
    ("fmt", "make"),
    [
        ("ucf101", lambda r: write_ucf101(r, UCF, 3, WRITE)),
        ("hmdb51", lambda r: write_hmdb51(r, HMDB, 3, WRITE, sub="videos")),
        ("ssv2", lambda r: write_ssv2(r, SSV2, 3, WRITE)),
        ("kinetics", lambda r: write_kinetics(r, K400, 3, WRITE)),
        ("folder", lambda r: write_folder(r, ["a", "b"], 3, WRITE, ext=[".webm"])),
    ],
)
def test_auto_recognises_each_layout_and_says_which(tmp_path, caplog, fmt, make):
    root = make(tmp_path / fmt)
    assert detect(options(root))[0] == fmt
    with caplog.at_level(logging.INFO, logger="nlvideo.data.formats"):
        data = read_layout("auto", options(root))
    assert data.format == fmt
    assert f"reading {root} as {fmt}" in caplog.text


def test_every_format_is_a_config_choice():
    from nlvideo.config import _CHOICES

    assert _CHOICES["data.format"] == ("auto", *FORMATS)


def test_unrecognised_root_is_an_error_saying_what_was_looked_for(tmp_path):
    with pytest.raises(ValueError, match=r"cannot tell the layout.*set data\.format"):
        detect(options(tmp_path))


# ----------------------------------------------------------------------------- class tables
def write_list(path: Path, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{row}\n" for row in rows))
    return path


@pytest.fixture
def named_lists(tmp_path):
    names = ["x", "y", "z"]
    train = write_list(tmp_path / "n" / "train.txt", [f"t{i}.mp4 {names[i % 3]}" for i in range(6)])
    val = write_list(tmp_path / "n" / "val.txt", [f"v{i}.mp4 {names[i % 3]}" for i in range(3)])
    return train, val


def test_index_list_with_a_class_file_in_any_order_equals_the_name_list(tmp_path, named_lists):
    by_name = load_splits(
        "list", options(None, train_list=str(named_lists[0]), val_list=str(named_lists[1]))
    )
    order = ["z", "x", "y"]  # another class order: indices follow the file
    index = {n: i for i, n in enumerate(order)}
    (tmp_path / "i").mkdir()
    (tmp_path / "i" / "classes.json").write_text(json.dumps(order))
    for name in ("train.txt", "val.txt"):
        rows = [
            line.rsplit(" ", 1)
            for line in (named_lists[0].parent / name).read_text().split("\n")
            if line
        ]
        write_list(tmp_path / "i" / name, [f"../n/{p} {index[label]}" for p, label in rows])
    by_index = load_splits(
        "list",
        options(
            None,
            train_list=str(tmp_path / "i" / "train.txt"),
            val_list=str(tmp_path / "i" / "val.txt"),
        ),
    )
    names = lambda s, rs: [(Path(r.path).name, s.classes[r.label]) for r in rs]  # noqa: E731
    assert names(by_index, by_index.val) == names(by_name, by_name.val)
    assert names(by_index, by_index.train) == names(by_name, by_name.train)
    assert by_index.classes == order


def test_numeric_class_names_without_a_class_file_are_an_error(tmp_path):
    train = write_list(tmp_path / "train.txt", ["a.mp4 1", "b.mp4 2"])
    with pytest.raises(AnnotationError, match=r"train\.txt:1: label '1' looks like a class index"):
        load_splits("list", options(None, train_list=str(train), val_list=str(train)))


def test_a_class_file_class_without_training_video_is_an_error_naming_it(tmp_path, named_lists):
    (tmp_path / "classes.txt").write_text("x\ny\nz\nyak\n")
    opts = options(
        None,
        train_list=str(named_lists[0]),
        val_list=str(named_lists[1]),
        class_index=str(tmp_path / "classes.txt"),
    )
    with pytest.raises(AnnotationError, match=r"1 class.*with no training video: 'yak'"):
        load_splits("list", opts)


# ----------------------------------------------------------------------------- config and run
def test_data_format_with_the_builtin_set_is_an_error_not_ignored():
    from nlvideo.config import load_config

    with pytest.raises(
        ValueError, match=r"data\.format=ucf101 is not read with data\.builtin=true"
    ):
        load_config(None, ["data.format=ucf101"])
    for bad in ("data.split=4", "data.val_fraction=1.0", "data.format=csv"):
        with pytest.raises(ValueError, match=bad.split("=")[0]):
            load_config(None, ["data.builtin=false", bad])


def test_training_writes_its_folder_split_into_the_run_folder(tmp_path):
    from conftest import TINY_TEST_VIEWS

    from nlvideo import pipeline
    from nlvideo.config import load_config
    from nlvideo.engine.distributed import init_distributed

    root = write_folder(tmp_path / "mine", ["a", "b"], 4, WRITE, ext=[".mp4"])
    out = tmp_path / "run"
    cfg = load_config(
        None,
        [
            *TINY_TEST_VIEWS,
            "data.builtin=false",
            f"data.root={root}",
            f"train.output_dir={out}",
            "model.name=c2d_tiny",
            "data.num_workers=0",
            "train.batch_size=2",
        ],
    )
    parts = pipeline.build_training(cfg, init_distributed("cpu"))
    assert parts.classes == ["a", "b"] and len(parts.val_records) == 2
    listed = (out / "data" / "val.txt").read_text().splitlines()
    assert listed == [f"{r.path},{r.label}" for r in parts.val_records]
    assert json.loads((out / "data" / "classes.json").read_text()) == ["a", "b"]


def test_a_kinetics_recipe_needs_only_data_root(tmp_path):
    from nlvideo import pipeline
    from nlvideo.config import load_config
    from nlvideo.engine.distributed import init_distributed

    root = write_kinetics(tmp_path / "k400", K400, 3, WRITE)
    recipe = Path(__file__).parent.parent / "configs" / "kinetics400" / "i3d_r50_8x8.yaml"
    cfg = load_config(recipe, [f"data.root={root}"])
    pipeline.check_config(cfg)
    data = pipeline.run_data(cfg, init_distributed("cpu"))
    assert data.format == "kinetics" and data.classes == K400
    assert len(data.train) == 3 * 2 and len(data.val) == 3
