"""From a layout's name-labelled records to a run's class table and indexed records.

The class table is built once, from the training split: the layout's (or class file's) order
when it has one, else the sorted names. A class with no training video is an error naming
it, and so is a validation label the table does not hold (a silent extra class would never
be predicted). Labels become indices here, at the last moment. A run writes its split as
lists (``write_splits``) so the same videos can be evaluated or trained on again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from nlvideo.data.annotations import (
    AnnotationError,
    Problem,
    VideoRecord,
    parse_kinetics_csv,
    parse_video_list,
    to_records,
)
from nlvideo.data.classes import (
    NamedRecord,
    class_table,
    few_names,
    find_class_file,
    save_classes,
    unknown_classes,
)
from nlvideo.data.formats import read_layout
from nlvideo.data.formats.base import LayoutOptions

logger = logging.getLogger(__name__)


@dataclass
class DataSplits:
    """A run's training and validation videos, labels indexing ``classes``."""

    format: str
    train: list[VideoRecord]
    val: list[VideoRecord]
    classes: list[str]
    skipped: list[Problem] = field(default_factory=list)  # rows left out (skip_bad_rows)


def load_splits(fmt: str, options: LayoutOptions, *, skip_bad_rows: bool = False) -> DataSplits:
    """Read layout ``fmt`` and build the class table once.

    Args:
        fmt: A ``data.format`` value ("auto" detects the layout).
        options: Where the layout is; its ``problems`` is replaced.
        skip_bad_rows: Leave malformed and unknown-label rows out (listed in ``skipped``)
            instead of raising.

    Raises:
        AnnotationError, ValueError: bad rows, a class with no training video, validation
            labels that are not training classes, an index label without class file.
    """
    skipped: list[Problem] = []
    options.problems = skipped if skip_bad_rows else None
    data = read_layout(fmt, options)
    source = f"data.format={data.format} ({data.source})"
    classes = class_table((r.label for r in data.train), data.classes, source=source)
    val = data.val
    unknown = unknown_classes(val, classes)
    if unknown and not skip_bad_rows:
        raise AnnotationError(
            f"{source}: validation labels with no training video: {few_names(unknown)}"
        )
    if unknown:
        message = "label {!r} has no training video"
        skipped += [
            Problem("unknown_label", r.path, message.format(r.label))
            for r in val
            if r.label in set(unknown)
        ]
        val = [r for r in val if r.label not in set(unknown)]
    if skipped:
        logger.warning(
            "%s: skipped %d bad row(s), e.g. %s: %s",
            source,
            len(skipped),
            skipped[0].where,
            skipped[0].message,
        )
    if not val:
        raise AnnotationError(f"{source}: no validation videos")
    return DataSplits(
        format=data.format,
        train=to_records(data.train, classes, source=source),
        val=to_records(val, classes, source=source),
        classes=classes,
        skipped=skipped,
    )


def write_splits(splits: DataSplits, folder: str | Path) -> Path:
    """``train.txt`` / ``val.txt`` ("absolute/path,index") + ``classes.json`` in ``folder``.

    Read them back with ``data.format=list`` (or ``nlvideo-eval --list``); the class file
    beside them gives the indices their names. Bad rows skipped go to
    ``folder/../skipped_rows.txt``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, records in (("train.txt", splits.train), ("val.txt", splits.val)):
        lines = [f"{os.path.abspath(r.path)},{r.label}\n" for r in records]
        (folder / name).write_text("".join(lines), encoding="utf-8")
    save_classes(splits.classes, folder / "classes.json")
    if splits.skipped:
        lines = [f"{p.kind}\t{p.where}\t{p.message}\n" for p in splits.skipped]
        (folder.parent / "skipped_rows.txt").write_text("".join(lines), encoding="utf-8")
    return folder


def read_list(
    path: str | Path, *, root: str | Path | None = None, class_file: str | Path | None = None
) -> list[NamedRecord]:
    """A list to evaluate: Kinetics CSV or "path label" list, labels as class names.

    Index labels need ``class_file`` or a class file beside the list.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"list {path} does not exist")
    if path.suffix.lower() == ".csv":
        return parse_kinetics_csv(path, root=root if root else path.parent)
    class_file = class_file or find_class_file(path.parent)
    return parse_video_list(path, root=root or None, class_file=class_file)


def map_to_classes(
    records: list[NamedRecord], classes: list[str], *, source: str
) -> list[VideoRecord]:
    """Records indexed by another class table (a checkpoint's) by name; a subset is fine.

    Raises:
        AnnotationError: listing the classes of ``records`` that ``classes`` lacks.
    """
    return to_records(records, classes, source=source)


__all__ = [
    "DataSplits",
    "load_splits",
    "map_to_classes",
    "read_list",
    "write_splits",
]
