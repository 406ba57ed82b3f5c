"""``ucf101``: ``UCF-101/<Class>/*.avi`` beside ``ucfTrainTestlist/`` (as the downloads unpack).

``classInd.txt`` numbers the classes from 1 ("1 ApplyEyeMakeup"); ``trainlist0N.txt`` lines
are "Class/v_Class_g08_c01.avi 1" (1-based labels); ``testlist0N.txt`` lines have no label:
the class is the video's folder. ``data.split`` picks N (1, 2 or 3).
"""

from __future__ import annotations

from pathlib import Path

from nlvideo.data.annotations import Problem, parse_video_list, raise_or_collect
from nlvideo.data.classes import NamedRecord, load_class_numbering
from nlvideo.data.formats.base import LayoutData, LayoutOptions, require_root, subdirs

LISTS = "ucfTrainTestlist"
VIDEOS = "UCF-101"


def find_lists(root: Path) -> Path | None:
    """The folder holding ``classInd.txt``: ``root/ucfTrainTestlist``, root, or one below."""
    for candidate in (root / LISTS, root, *subdirs(root)):
        if (candidate / "classInd.txt").is_file():
            return candidate
    return None


def _videos(root: Path, classes: list[str]) -> Path:
    for candidate in (root / VIDEOS, root, *subdirs(root)):
        if any((candidate / name).is_dir() for name in classes[:5]):
            return candidate
    return root / VIDEOS


def read_test_list(path: Path, videos: Path, classes: list[str], sink) -> list[NamedRecord]:
    """``Class/v_Class_g01_c01.avi`` lines: the class is the folder."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    known, records, bad = set(classes), [], []
    for lineno, line in enumerate(lines, 1):
        rel = line.strip().split()[0] if line.strip() else ""
        if not rel:
            continue
        label = Path(rel).parent.name
        if label not in known:
            message = f"folder {label!r} is not a class of classInd.txt"
            bad.append(Problem("unknown_label", f"{path}:{lineno}", message))
            continue
        records.append(NamedRecord(str(videos / rel), label, rel))
    raise_or_collect(bad, sink, str(path))
    return records


def read(options: LayoutOptions) -> LayoutData:
    """Split ``options.split`` of a UCF101 root, labels as class names."""
    root = require_root(options, "ucf101")
    lists = find_lists(root)
    if lists is None:
        raise ValueError(f"data.format=ucf101: no {LISTS}/classInd.txt under {root}")
    class_file = lists / "classInd.txt"
    classes = list(load_class_numbering(class_file).values())
    videos = _videos(root, classes)
    names = [f"trainlist0{options.split}.txt", f"testlist0{options.split}.txt"]
    for name in names:
        if not (lists / name).is_file():
            raise ValueError(f"data.split={options.split}: {lists / name} does not exist")
    train = parse_video_list(
        lists / names[0], root=videos, class_file=class_file, problems=options.problems
    )
    val = read_test_list(lists / names[1], videos, classes, options.problems)
    return LayoutData(
        format="ucf101",
        train=train,
        val=val,
        classes=classes,
        source=f"{lists / names[0]} / {lists / names[1]}",
        notes=[f"split {options.split}, videos under {videos}"],
    )
