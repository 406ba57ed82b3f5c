"""``kinetics``: the official CSVs (label, youtube_id, time_start, time_end, split).

``data.root=/data/k400`` alone is enough: the CSVs are ``train.csv`` and ``validate.csv``
(or ``val.csv``) in the root, ``annotations/`` or ``lists/``; the clips
``<youtube_id>_<start:06d>_<end:06d>.<ext>`` sit in ``<split>/<label>/`` or flat in
``<split>/`` under the root, ``videos/`` or ``raw/`` (``<split>`` = train, val or validate).
``data.train_list`` / ``data.val_list`` name other CSVs (relative to the root or the working
directory); "path label" lists there are read as the ``list`` layout.
"""

from __future__ import annotations

from pathlib import Path

from nlvideo.data.annotations import parse_kinetics_csv
from nlvideo.data.formats import listfile
from nlvideo.data.formats.base import (
    LayoutData,
    LayoutOptions,
    first_file,
    require_root,
    resolve_list,
)

CSV_FOLDERS = ("", "annotations", "lists")
TRAIN_NAMES = ("train.csv",)
VAL_NAMES = ("validate.csv", "val.csv")
VIDEO_FOLDERS = ("", "videos", "raw")
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validate", "valid")}


def find_csv(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first official CSV under ``root`` (itself, annotations/, lists/)."""
    return first_file([root / sub for sub in CSV_FOLDERS], names)


def _video_root(root: Path) -> Path:
    for sub in VIDEO_FOLDERS:
        base = root / sub
        if any((base / name).is_dir() for names in SPLIT_FOLDERS.values() for name in names):
            return base
    return root


def _split_folder(base: Path, split: str) -> str | None:
    """The folder of ``split`` under ``base``; None: the CSV's split column decides."""
    return next((name for name in SPLIT_FOLDERS[split] if (base / name).is_dir()), None)


def read(options: LayoutOptions) -> LayoutData:
    """Train and validation CSVs of a Kinetics root, labels as class names."""
    lists = [options.train_list, options.val_list]
    if any(x and not x.endswith(".csv") for x in lists):
        return listfile.read(options)
    root = require_root(options, "kinetics")
    paths = []
    for key, given, names in (
        ("train_list", options.train_list, TRAIN_NAMES),
        ("val_list", options.val_list, VAL_NAMES),
    ):
        path = resolve_list(given, root, key) if given else find_csv(root, names)
        if path is None:
            folders = ", ".join(str(root / sub) for sub in CSV_FOLDERS)
            raise ValueError(f"data.{key}: none of {'/'.join(names)} in {folders}")
        paths.append(path)
    base = _video_root(root)
    train, val = (
        parse_kinetics_csv(
            path, root=base, split=_split_folder(base, split), problems=options.problems
        )
        for path, split in zip(paths, ("train", "val"), strict=True)
    )
    return LayoutData(
        format="kinetics",
        train=list(train),
        val=list(val),
        source=f"{paths[0]} / {paths[1]}",
        notes=[f"videos under {base}"],
    )
