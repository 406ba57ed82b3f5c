"""Annotation parsing (Kinetics CSV, "path label" lists, class files) and validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlvideo.data.annotations import (
    AnnotationError,
    Problem,
    VideoRecord,
    kinetics_filename,
    load_classes,
    load_kinetics_csv,
    load_video_list,
    parse_video_list,
    save_classes,
    validate_records,
)

CSV_HEADER = "label,youtube_id,time_start,time_end,split\n"


def touch(path: Path, data: bytes = b"video") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- class files
@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("c.json", json.dumps(["b", "a", "c"])),
        ("c.json", json.dumps({"a": 1, "b": 0, "c": 2})),
        ("c.json", json.dumps({"1": "a", "0": "b", "2": "c"})),
        ("c.txt", "b\na\n\nc\n"),
    ],
)
def test_class_files_give_names_in_index_order(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    assert load_classes(tmp_path / name) == ["b", "a", "c"]


def test_saved_classes_load_back(tmp_path):
    save_classes(["x y", "z"], tmp_path / "classes.json")
    assert load_classes(tmp_path / "classes.json") == ["x y", "z"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('["a", "b"', r"c\.json:1: invalid JSON"),
        ('{"a": 0, "b": 2}', "0..1 exactly once"),
        ('["a", "a"]', "duplicate class names"),
        ("[]", "no class names"),
    ],
)
def test_bad_class_file_is_a_clear_error(tmp_path, content, match):
    (tmp_path / "c.json").write_text(content)
    with pytest.raises(AnnotationError, match=match):
        load_classes(tmp_path / "c.json")


# ----------------------------------------------------------------------------- "path label"
def test_int_labels_without_a_class_file_are_an_error_not_classes_named_0_1_2(tmp_path):
    (tmp_path / "train.txt").write_text("a/x.mp4 2\n# comment\n\nb/my video.mp4 0\n")
    with pytest.raises(AnnotationError, match=r"train\.txt:1: label '2' looks like a class index"):
        load_video_list(tmp_path / "train.txt", root="/data")


@pytest.mark.parametrize(
    ("name", "content"),
    [("classes.json", '["a", "b", "c"]'), ("classes.txt", "a\nb\nc\n")],
)
def test_space_separated_list_with_int_labels_and_a_class_file_beside_it(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    (tmp_path / "train.txt").write_text("a/x.mp4 2\n# comment\n\nb/my video.mp4 0\n")
    records, classes = load_video_list(tmp_path / "train.txt", root="/data")
    assert records == [
        VideoRecord("/data/a/x.mp4", 2, "a/x.mp4"),
        VideoRecord("/data/b/my video.mp4", 0, "b/my video.mp4"),
    ]
    assert classes == ["a", "b", "c"]


def test_class_ind_numbering_is_one_based(tmp_path):
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n3 BabyCrawling\n")
    assert load_classes(tmp_path / "classInd.txt") == ["ApplyEyeMakeup", "Archery", "BabyCrawling"]
    (tmp_path / "trainlist01.txt").write_text("Archery/v_Archery_g01_c01.avi 2\n")
    named = parse_video_list(tmp_path / "trainlist01.txt")
    assert [r.label for r in named] == ["Archery"]


def test_comma_separated_list_with_class_names(tmp_path):
    (tmp_path / "l.csv").write_text("x.mp4,air drumming\n/abs/y.mp4, abseiling\n")
    records, classes = load_video_list(tmp_path / "l.csv")
    assert classes == ["abseiling", "air drumming"]
    assert records[0] == VideoRecord(str(tmp_path / "x.mp4"), 1, "x.mp4")
    assert records[1].path == "/abs/y.mp4" and records[1].label == 0


def test_given_classes_map_names_and_indices(tmp_path):
    (tmp_path / "l.txt").write_text("x.mp4 b\ny.mp4 0\n")
    records, classes = load_video_list(tmp_path / "l.txt", classes=["a", "b"])
    assert [r.label for r in records] == [1, 0]
    assert classes == ["a", "b"]


def test_unknown_label_names_file_and_line(tmp_path):
    (tmp_path / "l.txt").write_text("x.mp4 a\ny.mp4 zebra\nz.mp4 7\n")
    with pytest.raises(AnnotationError) as e:
        load_video_list(tmp_path / "l.txt", classes=["a", "b"])
    assert f"{tmp_path / 'l.txt'}:2: unknown label 'zebra'" in str(e.value)
    assert f"{tmp_path / 'l.txt'}:3: unknown label '7'" in str(e.value)
    assert len(e.value.problems) == 2


def test_malformed_row_names_file_and_line(tmp_path):
    (tmp_path / "l.txt").write_text("x.mp4 a\njustonefield\n")
    with pytest.raises(AnnotationError, match=r"l\.txt:2: expected 'path label'"):
        load_video_list(tmp_path / "l.txt")


def test_problems_can_be_collected_instead_of_raised(tmp_path):
    (tmp_path / "l.txt").write_text("x.mp4 a\nbroken\ny.mp4 zebra\n")
    problems: list[Problem] = []
    records, _ = load_video_list(tmp_path / "l.txt", classes=["a"], problems=problems)
    assert [r.video_id for r in records] == ["x.mp4"]
    assert [(p.kind, p.where.rsplit(":", 1)[1]) for p in problems] == [
        ("malformed", "2"),
        ("unknown_label", "3"),
    ]


def test_unreadable_list_is_a_clear_error(tmp_path):
    with pytest.raises(AnnotationError, match="cannot read video list"):
        load_video_list(tmp_path / "nope.txt")


# ----------------------------------------------------------------------------- Kinetics CSV
def write_csv(path: Path, rows: list[str], header: str = CSV_HEADER) -> Path:
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path


def test_kinetics_filename_is_zero_padded():
    assert kinetics_filename("abc-_12", 5, 15) == "abc-_12_000005_000015.mp4"


def test_kinetics_csv_finds_nested_flat_and_underscore_layouts(tmp_path):
    root = tmp_path / "k400"
    nested = touch(root / "train" / "air drumming" / "aaa_000001_000011.mp4")
    underscored = touch(root / "train" / "abseiling" / "bbb_000002_000012.mkv")
    flat = touch(root / "val" / "ccc_000003_000013.webm")
    csv = write_csv(
        tmp_path / "k.csv",
        [
            "air drumming,aaa,1,11,train",
            "abseiling,bbb,2.0,12.0,train",
            "air drumming,ccc,3,13,val",
            "abseiling,ddd,4,14,train",
        ],
    )
    records, classes = load_kinetics_csv(csv, root=root)
    assert classes == ["abseiling", "air drumming"]
    assert [r.path for r in records[:3]] == [str(nested), str(underscored), str(flat)]
    assert [r.label for r in records] == [1, 0, 1, 0]
    assert records[3].path == str(root / "train" / "abseiling" / "ddd_000004_000014.mp4")
    assert records[0].video_id == "aaa_000001_000011"


def test_kinetics_csv_split_argument_overrides_the_column(tmp_path):
    video = touch(tmp_path / "validate" / "a" / "x_000000_000010.mp4")
    csv = write_csv(tmp_path / "k.csv", ["a,x,0,10,val"])
    records, _ = load_kinetics_csv(csv, root=tmp_path, split="validate")
    assert records[0].path == str(video)


def test_kinetics_csv_without_split_column_reads_the_root(tmp_path):
    video = touch(tmp_path / "a" / "x_000000_000010.mp4")
    csv = write_csv(
        tmp_path / "k.csv", ["a,x,0,10"], header="label,youtube_id,time_start,time_end\n"
    )
    records, _ = load_kinetics_csv(csv, root=tmp_path)
    assert records[0].path == str(video)


def test_kinetics_csv_missing_column_is_a_clear_error(tmp_path):
    csv = write_csv(
        tmp_path / "k.csv", ["x,0,10,test"], header="youtube_id,time_start,time_end,split\n"
    )
    with pytest.raises(AnnotationError, match=r"k\.csv:1: .*lacks column\(s\) \['label'\]"):
        load_kinetics_csv(csv, root=tmp_path)


def test_kinetics_csv_bad_rows_name_their_lines(tmp_path):
    csv = write_csv(
        tmp_path / "k.csv",
        ["a,x,0,10,train", "a,y,zero,10,train", "a,z,0,10", "a,w,10,5,train", "b,v,0,10,train"],
    )
    problems: list[Problem] = []
    records, _ = load_kinetics_csv(csv, root=tmp_path, classes=["a"], problems=problems)
    assert [r.video_id for r in records] == ["x_000000_000010"]
    assert [(p.kind, p.where.rsplit(":", 1)[1]) for p in problems] == [
        ("malformed", "3"),
        ("malformed", "4"),
        ("malformed", "5"),
        ("unknown_label", "6"),
    ]
    with pytest.raises(AnnotationError, match=r"4 bad row\(s\)"):
        load_kinetics_csv(csv, root=tmp_path, classes=["a"])


# ----------------------------------------------------------------------------- validation
def test_validation_counts_every_problem_in_one_summary(tmp_path):
    ok = [touch(tmp_path / f"ok{i}.mp4") for i in range(3)]
    empty = touch(tmp_path / "empty.mp4", b"")
    records = [VideoRecord(str(p), 0, p.stem) for p in ok]
    records += [
        VideoRecord(str(tmp_path / "gone1.mp4"), 0, "gone1"),
        VideoRecord(str(tmp_path / "gone2.mp4"), 0, "gone2"),
        VideoRecord(str(empty), 0, "empty"),
        VideoRecord(str(ok[0]), 0, "again"),
    ]
    parsed = [Problem("malformed", "l.txt:4", "bad"), Problem("unknown_label", "l.txt:9", "x")]
    report = validate_records(records, problems=parsed, report_path=tmp_path / "problems.tsv")
    assert report.counts() == {
        "missing": 2,
        "empty": 1,
        "duplicate": 1,
        "malformed": 1,
        "unknown_label": 1,
    }
    assert report.summary() == (
        "2 of 9 videos missing, 1 empty (0-byte) files, 1 malformed rows, "
        "1 unknown labels, 1 duplicates"
    )
    assert report.bad_paths() == {
        str(tmp_path / "gone1.mp4"),
        str(tmp_path / "gone2.mp4"),
        str(empty),
    }
    lines = (tmp_path / "problems.tsv").read_text().splitlines()
    assert lines[0] == report.summary() and len(lines) == 1 + 6
    assert f"missing\t{tmp_path / 'gone1.mp4'}\tfile not found" in lines


def test_validation_of_a_clean_list(tmp_path):
    records = [VideoRecord(str(touch(tmp_path / f"{i}.mp4")), 0, str(i)) for i in range(4)]
    report = validate_records(records)
    assert report.ok and report.summary() == "all 4 videos OK"


def test_validation_large_numbers_use_thousands_separators(tmp_path):
    records = [VideoRecord(str(tmp_path / f"{i}.mp4"), 0, str(i)) for i in range(1234)]
    assert validate_records(records).summary() == "1,234 of 1,234 videos missing"
