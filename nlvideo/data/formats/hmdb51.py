"""``hmdb51``: ``testTrainMulti_7030_splits/<class>_test_splitN.txt`` + ``<class>/<name>.avi``.

Each split file line is "name.avi F": F = 1 training, 2 testing, 0 unused in split N
(``data.split``). The class folders sit in ``data.root`` or in one folder below it.
"""

from __future__ import annotations

import re
from pathlib import Path

from nlvideo.data.annotations import Problem, raise_or_collect
from nlvideo.data.classes import NamedRecord
from nlvideo.data.formats.base import LayoutData, LayoutOptions, require_root, subdirs

SPLITS = "testTrainMulti_7030_splits"
FLAGS = {"1": "train", "2": "val", "0": None}


def find_splits(root: Path) -> Path | None:
    """``root/testTrainMulti_7030_splits`` (or one folder below the root)."""
    for candidate in (root, *subdirs(root)):
        if (candidate / SPLITS).is_dir():
            return candidate / SPLITS
    return None


def _videos(root: Path, classes: list[str]) -> Path:
    for candidate in (root, *subdirs(root)):
        if any((candidate / name).is_dir() for name in classes[:5]):
            return candidate
    return root


def read(options: LayoutOptions) -> LayoutData:
    """Split ``options.split`` of an HMDB51 root, labels as class names."""
    root = require_root(options, "hmdb51")
    splits = find_splits(root)
    if splits is None:
        raise ValueError(f"data.format=hmdb51: no {SPLITS}/ under {root}")
    pattern = re.compile(rf"^(.+)_test_split{options.split}\.txt$")
    files = sorted(p for p in splits.iterdir() if pattern.match(p.name))
    if not files:
        raise ValueError(
            f"data.split={options.split}: no *_test_split{options.split}.txt in {splits}"
        )
    classes = [pattern.match(p.name).group(1) for p in files]  # type: ignore[union-attr]
    videos = _videos(root, classes)
    out: dict[str, list[NamedRecord]] = {"train": [], "val": []}
    bad: list[Problem] = []
    for path, label in zip(files, classes, strict=True):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in FLAGS:
                message = f"expected 'name.avi 0|1|2', got {line.strip()!r}"
                bad.append(Problem("malformed", f"{path}:{lineno}", message))
                continue
            split = FLAGS[fields[1]]
            if split is not None:
                rel = f"{label}/{fields[0]}"
                out[split].append(NamedRecord(str(videos / rel), label, rel))
    raise_or_collect(bad, options.problems, str(splits))
    return LayoutData(
        format="hmdb51",
        train=out["train"],
        val=out["val"],
        classes=classes,
        source=str(splits),
        notes=[f"split {options.split}, videos under {videos}"],
    )
