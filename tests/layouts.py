"""Writers of small data-set trees in the layouts the field ships (for tests and demos).

Each writer takes ``write(path, class_index, video_index)`` to make one video (default: a
tiny clip whose frames carry their index), so the same trees serve the layout tests and the
end-to-end demo (which draws learnable moving shapes instead).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from conftest import make_video

Writer = Callable[[Path, int, int], Path]
CODECS = {".avi": "mpeg4", ".webm": "libvpx-vp9", ".mkv": "libx264", ".mp4": "libx264"}


def tiny_writer(num_frames: int = 8, size: tuple[int, int] = (32, 32)) -> Writer:
    """Videos of ``num_frames`` frames (codec by extension), each frame showing its index."""

    def write(path: Path, class_index: int, video_index: int) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return make_video(path, num_frames, size, 25, codec=CODECS[path.suffix])

    return write


def write_ucf101(root: Path, classes: Sequence[str], per_class: int, write: Writer) -> Path:
    """``root/UCF-101/<Class>/v_<Class>_gGG_c01.avi`` + ``root/ucfTrainTestlist`` (3 splits).

    Group g goes to the test list of split s when ``(g + s) % 3 == 0``, else to its train
    list with the class's 1-based number, as shipped.
    """
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(classes, 1)))
    splits: dict[int, tuple[list[str], list[str]]] = {s: ([], []) for s in (1, 2, 3)}
    for ci, name in enumerate(classes):
        for g in range(1, per_class + 1):
            rel = f"{name}/v_{name}_g{g:02d}_c01.avi"
            write(root / "UCF-101" / rel, ci, g)
            for s, (train, test) in splits.items():
                if (g + s) % 3 == 0:
                    test.append(rel)
                else:
                    train.append(f"{rel} {ci + 1}")
    for s, (train, test) in splits.items():
        (lists / f"trainlist0{s}.txt").write_text("\r\n".join(train) + "\r\n")  # as shipped
        (lists / f"testlist0{s}.txt").write_text("\r\n".join(test) + "\r\n")
    return root


def write_hmdb51(
    root: Path, classes: Sequence[str], per_class: int, write: Writer, *, sub: str = ""
) -> Path:
    """``root[/sub]/<class>/<name>.avi`` + ``testTrainMulti_7030_splits/<class>_test_splitN.txt``.

    Video v of a class is 2 (test) when ``v % 3 == 0``, 0 (unused) when ``v % 5 == 4``,
    else 1 (train), in every split.
    """
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True, exist_ok=True)
    videos = root / sub if sub else root
    for ci, name in enumerate(classes):
        lines = []
        for v in range(per_class):
            file = f"{name}_clip_{v}.avi"
            write(videos / name / file, ci, v)
            flag = 2 if v % 3 == 0 else 0 if v % 5 == 4 else 1
            lines.append(f"{file} {flag} \n")
        for s in (1, 2, 3):
            (splits / f"{name}_test_split{s}.txt").write_text("".join(lines))
    return root


def write_ssv2(root: Path, templates: Sequence[str], per_class: int, write: Writer) -> Path:
    """``labels.json`` / ``train.json`` / ``validation.json`` in ``root/labels``, webm videos.

    Templates use "something" in labels.json and "[something]" in the video entries, as
    shipped; every third video of a class goes to validation.
    """
    labels = root / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    names = [t.replace("[", "").replace("]", "") for t in templates]
    (labels / "labels.json").write_text(json.dumps({n: str(i) for i, n in enumerate(names)}))
    train, val = [], []
    video_id = 1000
    for ci, template in enumerate(templates):
        for v in range(per_class):
            video_id += 1
            write(root / "20bn-something-something-v2" / f"{video_id}.webm", ci, v)
            entry = {
                "id": str(video_id),
                "label": "a thing",
                "template": template,
                "placeholders": ["thing"],
            }
            (val if v % 3 == 0 else train).append(entry)
    (labels / "train.json").write_text(json.dumps(train))
    (labels / "validation.json").write_text(json.dumps(val))
    return root


def write_kinetics(
    root: Path, classes: Sequence[str], per_class: int, write: Writer, *, val_extra: str = ""
) -> Path:
    """``root/annotations/{train,validate}.csv`` + ``root/{train,val}/<label>/<id>_s_e.mp4``.

    ``val_extra``: a validation row whose label has no training video.
    """
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    header = "label,youtube_id,time_start,time_end,split\n"
    rows: dict[str, list[str]] = {"train": [], "val": []}
    for ci, label in enumerate(classes):
        for v in range(per_class):
            split = "val" if v % 3 == 0 else "train"
            youtube_id = f"y{ci:03d}{v:04d}xx"
            write(root / split / label / f"{youtube_id}_{v:06d}_{v + 10:06d}.mp4", ci, v)
            rows[split].append(f"{label},{youtube_id},{v},{v + 10},{split}\n")
    if val_extra:
        rows["val"].append(f"{val_extra},zzzzzzzzzzz,0,10,val\n")
    (root / "annotations" / "train.csv").write_text(header + "".join(rows["train"]))
    (root / "annotations" / "validate.csv").write_text(header + "".join(rows["val"]))
    return root


def write_folder(
    root: Path, classes: Sequence[str], per_class: int, write: Writer, *, ext: Sequence[str]
) -> Path:
    """``root/<class>/<class>_<v>.<ext>`` (extensions cycled)."""
    for ci, name in enumerate(classes):
        for v in range(per_class):
            write(root / name / f"{name}_{v:02d}{ext[v % len(ext)]}", ci, v)
    return root
