"""datasets/prepare_kinetics.py on three generated clips (and one missing)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import frame_index, make_video

from nlvideo.data.annotations import load_video_list
from nlvideo.data.video import open_video

SCRIPT = Path(__file__).resolve().parents[1] / "datasets" / "prepare_kinetics.py"


@pytest.fixture(scope="module")
def prepare():
    spec = importlib.util.spec_from_file_location("prepare_kinetics", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw"
    (root / "train" / "air drumming").mkdir(parents=True)
    (root / "train" / "abseiling").mkdir(parents=True)
    make_video(root / "train" / "air drumming" / "aaa_000000_000010.mp4", 20)
    make_video(root / "train" / "abseiling" / "bbb_000001_000011.mp4", 24, gop=100)
    make_video(root / "train" / "abseiling" / "ccc_000002_000012.mkv", 18, (64, 96))
    csv = tmp_path / "train.csv"
    csv.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "air drumming,aaa,0,10,train\n"
        "abseiling,bbb,1,11,train\n"
        "abseiling,ccc,2,12,train\n"
        "abseiling,gone,3,13,train\n"
    )
    return root, csv


def run(prepare, root, csv, out, *extra):
    args = ["--root", str(root), "--csv", str(csv), "--out", str(out), "--workers", "1"]
    return prepare.main([*args, *extra])


def test_lists_classes_and_problems_without_reencoding(prepare, raw, tmp_path):
    root, csv = raw
    assert run(prepare, root, csv, tmp_path / "lists") == 0
    assert json.loads((tmp_path / "lists" / "classes.json").read_text()) == [
        "abseiling",
        "air drumming",
    ]
    records, _ = load_video_list(tmp_path / "lists" / "train.txt", root=root)
    assert [(Path(r.path).name, r.label) for r in records] == [
        ("aaa_000000_000010.mp4", 1),
        ("bbb_000001_000011.mp4", 0),
        ("ccc_000002_000012.mkv", 0),
    ]
    problems = (tmp_path / "lists" / "problems_train.tsv").read_text().splitlines()
    assert problems[0] == "1 of 4 videos missing" and "gone_000003_000013" in problems[1]


def test_reencode_resizes_keeps_frames_and_fixes_the_gop(prepare, raw, tmp_path):
    root, csv = raw
    sources = {p: p.read_bytes() for p in root.rglob("*.*")}
    out = tmp_path / "k400_32"
    run(
        prepare,
        root,
        csv,
        tmp_path / "lists",
        "--reencode",
        str(out),
        "--short-side",
        "32",
        "--gop",
        "8",
    )
    records, _ = load_video_list(tmp_path / "lists" / "train.txt", root=out)
    assert [Path(r.path).relative_to(out).as_posix() for r in records] == [
        "train/air drumming/aaa_000000_000010.mp4",
        "train/abseiling/bbb_000001_000011.mp4",
        "train/abseiling/ccc_000002_000012.mp4",
    ]
    for record, (n, hw) in zip(
        records, [(20, (32, 48)), (24, (32, 48)), (18, (48, 32))], strict=True
    ):
        with open_video(record.path, backend="pyav") as reader:
            assert (reader.num_frames, (reader.height, reader.width)) == (n, hw)
            assert [frame_index(f) for f in reader.read(np.arange(n))] == list(range(n))
        with av.open(record.path) as container:
            entries = container.streams.video[0].index_entries
            keyframes = [i for i, e in enumerate(entries) if e.is_keyframe]
        assert keyframes == list(range(0, n, 8))
    assert {p: p.read_bytes() for p in root.rglob("*.*")} == sources


def test_reencoding_resumes_and_never_touches_finished_outputs(prepare, raw, tmp_path):
    root, csv = raw
    out = tmp_path / "out"
    run(prepare, root, csv, tmp_path / "lists", "--reencode", str(out), "--short-side", "32")
    done = out / "train" / "abseiling" / "bbb_000001_000011.mp4"
    done.write_bytes(b"marker: a finished output")
    (out / "train" / "air drumming" / "aaa_000000_000010.mp4").unlink()
    run(prepare, root, csv, tmp_path / "lists", "--reencode", str(out), "--short-side", "32")
    assert done.read_bytes() == b"marker: a finished output"
    assert (out / "train" / "air drumming" / "aaa_000000_000010.mp4").stat().st_size > 0
    assert not list(out.rglob("*.part"))


def test_reencoding_into_the_source_root_is_refused(prepare, raw, tmp_path):
    root, csv = raw
    with pytest.raises(ValueError, match="never overwritten"):
        run(prepare, root, csv, tmp_path / "lists", "--reencode", str(root))


def test_videos_that_do_not_decode_go_to_the_problems_file_not_the_list(
    prepare, raw, broken_files, tmp_path
):
    root, csv = raw
    rows = csv.read_text()
    for i, kind in enumerate(("truncated", "audio_only", "text")):
        name = f"bad{kind[:3]}_{i:06d}_{i + 10:06d}.mp4"
        (root / "train" / "abseiling" / name).write_bytes(broken_files[kind].read_bytes())
        rows += f"abseiling,bad{kind[:3]},{i},{i + 10},train\n"
    csv.write_text(rows)
    assert run(prepare, root, csv, tmp_path / "lists") == 0
    listed = (tmp_path / "lists" / "train.txt").read_text()
    assert "bad" not in listed and len(listed.splitlines()) == 3
    problems = (tmp_path / "lists" / "problems_train.tsv").read_text().splitlines()
    assert "3 videos that do not decode" in problems[0]
    undecodable = [line.split("\t") for line in problems[1:] if line.startswith("undecodable")]
    assert sorted(Path(where).name[:6] for _, where, _ in undecodable) == [
        "badaud",
        "badtex",
        "badtru",
    ]
    reasons = {Path(where).name[:6]: reason for _, where, reason in undecodable}
    assert reasons["badaud"] == "no video stream"
