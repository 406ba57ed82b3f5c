"""What every layout reader takes and returns, and the helpers they share."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from nlvideo.data.annotations import VIDEO_EXTENSIONS, AnnotationError, Problem
from nlvideo.data.classes import NamedRecord


@dataclass
class LayoutOptions:
    """Plain arguments of a layout reader (``pipeline`` fills them from ``data.*``)."""

    root: Path | None  # data.root: the folder the layout was unpacked into
    train_list: str = ""  # list / CSV paths (list and kinetics layouts); relative to root
    val_list: str = ""
    class_index: str = ""  # class file (index labels refer to it; its order is the table's)
    split: int = 1  # official split number (UCF101, HMDB51)
    val_fraction: float = 0.2  # folder layout without lists: share of each class held out
    seed: int = 0  # folder layout: the split's seed
    problems: list[Problem] | None = None  # collect bad rows here instead of raising


@dataclass
class LayoutData:
    """A layout read into name-labelled records."""

    format: str  # the reader's name
    train: list[NamedRecord]
    val: list[NamedRecord]  # the validation / test split
    classes: list[str] | None = None  # the layout's own class order; None = sorted names
    source: str = ""  # where the records came from, for messages
    notes: list[str] = field(default_factory=list)  # what the reader decided (logged)


def require_root(options: LayoutOptions, fmt: str) -> Path:
    """``options.root`` as an existing directory."""
    if options.root is None:
        raise AnnotationError(f"data.format={fmt} needs data.root (the folder it is in)")
    if not options.root.is_dir():
        raise AnnotationError(f"data.root: {options.root} is not a directory")
    return options.root


def resolve_list(path: str, root: Path | None, key: str) -> Path:
    """A list path as given (absolute or from the working directory), else under ``root``."""
    given = Path(path)
    if given.is_file():
        return given
    if root is not None and not given.is_absolute() and (root / given).is_file():
        return root / given
    where = f" (nor under data.root={root})" if root is not None and not given.is_absolute() else ""
    raise AnnotationError(f"data.{key}: {path} does not exist{where}")


def first_file(directories: list[Path], names: tuple[str, ...]) -> Path | None:
    """The first ``directory/name`` that is a file, directories first."""
    for directory in directories:
        for name in names:
            if (directory / name).is_file():
                return directory / name
    return None


def video_files(directory: Path) -> list[Path]:
    """Video files directly in ``directory``, sorted by name."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return []
    return [
        Path(e.path)
        for e in entries
        if e.is_file()
        and not e.name.startswith(".")
        and os.path.splitext(e.name)[1].lower() in VIDEO_EXTENSIONS
    ]


def subdirs(directory: Path) -> list[Path]:
    """Visible sub-folders of ``directory``, sorted by name."""
    try:
        return sorted(
            Path(e.path) for e in os.scandir(directory) if e.is_dir() and not e.name.startswith(".")
        )
    except OSError:
        return []
