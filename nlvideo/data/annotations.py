"""Video lists: Kinetics CSVs, PySlowFast "path label" lists, class indices, validation.

Parsing never raises from deep inside: every bad row becomes a `Problem` naming the file, the
line and what is wrong. By default the loaders raise one `AnnotationError` listing them; pass a
`problems` list to collect them instead, then `validate_records` adds duplicates and missing
files and summarises everything in one line ("342 of 19,881 videos missing").
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nlvideo.data.classes import (
    AnnotationError,
    NamedRecord,
    VideoRecord,
    find_class_file,
    index_label_error,
    label_to_name,
    load_class_numbering,
    load_classes,
    looks_like_index,
    save_classes,
    to_records,
)

__all__ = [  # re-exported from classes
    "AnnotationError",
    "NamedRecord",
    "VideoRecord",
    "load_classes",
    "save_classes",
    "to_records",
]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an annotation row or a listed video."""

    kind: str  # "malformed" | "unknown_label" | "duplicate" | "missing" | "empty" | ...
    where: str  # "file:line" for rows, the video path for files
    message: str


def raise_or_collect(
    problems: list[Problem], sink: list[Problem] | None, source: str | Path
) -> None:
    """Bad rows of ``source``: into ``sink`` (skip_bad_rows) or one ``AnnotationError``, its
    first line the count and the file, then the first ten rows (the CLI prints it as is)."""
    if not problems:
        return
    if sink is not None:
        sink.extend(problems)
        return
    shown = "\n".join(f"  {p.where}: {p.message}" for p in problems[:10])
    more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
    raise AnnotationError(f"{len(problems)} bad row(s) in {source}:\n{shown}{more}", problems)


def _numbering(
    labels: Iterable[str], classes: Sequence[str] | None, beside: Path
) -> tuple[dict[str, str] | None, Path | None]:
    """Index -> name: of ``classes``, else of a class file beside the list (index labels)."""
    if classes is not None:
        return {str(i): name for i, name in enumerate(classes)}, None
    if any(looks_like_index(x) for x in labels):
        class_file = find_class_file(beside)
        if class_file is not None:
            return load_class_numbering(class_file), class_file
    return None, None


# ----------------------------------------------------------------------------- "path label"
def parse_video_list(
    path: str | Path,
    *,
    root: str | Path | None = None,
    classes: Sequence[str] | None = None,
    class_file: str | Path | None = None,
    problems: list[Problem] | None = None,
) -> list[NamedRecord]:
    """Read a PySlowFast-style list, one `path label` per line, into name-labelled records.

    Fields are split at the last comma when the line has one (so labels may contain spaces),
    otherwise at the last whitespace (so paths may). Blank lines and '#' lines are skipped.
    A label is a class name, or a class index into ``classes`` / ``class_file`` / a class file
    beside the list (``classes.json``, ``classes.txt``, ``classInd.txt``); an index label
    without any of them is a bad row, never a class named "3".

    Args:
        path: The list file.
        root: Directory that relative video paths are joined to (default: the list's directory).
        classes: Class names in index order (index labels refer to them).
        class_file: Class file for index labels (its own numbering, e.g. 1-based classInd.txt).
        problems: Collect bad rows here instead of raising `AnnotationError`.
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(f"cannot read video list {path}: {e}") from e
    rows, bad = [], []
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "," in line:
            video, _, label = line.rpartition(",")
        else:
            parts = line.strip().rsplit(None, 1)
            video, label = parts if len(parts) == 2 else ("", "")
        video, label = video.strip(), label.strip()
        if not video or not label:
            message = f"expected 'path label', got {line!r}"
            bad.append(Problem("malformed", f"{path}:{lineno}", message))
            continue
        rows.append((lineno, video, label))
    if class_file is not None and classes is None:
        numbering: dict[str, str] | None = load_class_numbering(class_file)
    else:
        numbering, class_file = _numbering((x for *_, x in rows), classes, path.parent)
    if numbering is None:
        first = next(((n, x) for n, _, x in rows if looks_like_index(x)), None)
        if first is not None:
            message = index_label_error(first[1], None, None)
            raise AnnotationError(f"{path}:{first[0]}: {message}")
    records = []
    for lineno, video, label in rows:
        name = label_to_name(label, numbering)
        if name is None:
            message = index_label_error(label, numbering, class_file)
            bad.append(Problem("unknown_label", f"{path}:{lineno}", message))
            continue
        records.append(NamedRecord(str(root / video), name, video))
    raise_or_collect(bad, problems, path)
    return records


def load_video_list(
    path: str | Path,
    *,
    root: str | Path | None = None,
    classes: Sequence[str] | None = None,
    problems: list[Problem] | None = None,
) -> tuple[list[VideoRecord], list[str]]:
    """A "path label" list as index-labelled records (see `parse_video_list`).

    Returns:
        (records, classes): ``classes`` as given, else those of a class file beside the list,
        else the sorted label names.
    """
    class_file = find_class_file(Path(path).parent) if classes is None else None
    named = parse_video_list(
        path, root=root, classes=classes, class_file=class_file, problems=problems
    )
    if class_file is not None:
        classes = load_classes(class_file)
    return _indexed(named, classes, path)


def _indexed(
    named: list[NamedRecord], classes: Sequence[str] | None, path: str | Path
) -> tuple[list[VideoRecord], list[str]]:
    table = list(classes) if classes is not None else sorted({r.label for r in named})
    return to_records(named, table, source=str(path)), table


# ----------------------------------------------------------------------------- Kinetics CSV
def kinetics_filename(youtube_id: str, start: int, end: int, ext: str = ".mp4") -> str:
    """Official clip name: `<youtube_id>_<start:06d>_<end:06d>.mp4`."""
    return f"{youtube_id}_{start:06d}_{end:06d}{ext}"


class _DirIndex:
    """Lists each directory once, so finding 240k files costs a few hundred `listdir`s."""

    def __init__(self) -> None:
        self._cache: dict[Path, dict[str, str]] = {}

    def stems(self, directory: Path) -> dict[str, str]:
        if directory not in self._cache:
            try:
                names = os.listdir(directory)
            except OSError:
                names = []
            found: dict[str, str] = {}
            for name in sorted(names):
                stem, ext = os.path.splitext(name)
                if ext.lower() in VIDEO_EXTENSIONS and (stem not in found or ext == ".mp4"):
                    found[stem] = name
            self._cache[directory] = found
        return self._cache[directory]

    def find(self, directories: Sequence[Path], stem: str) -> Path | None:
        for directory in directories:
            name = self.stems(directory).get(stem)
            if name is not None:
                return directory / name
        return None


def load_kinetics_csv(
    path: str | Path,
    *,
    root: str | Path,
    split: str | None = None,
    classes: Sequence[str] | None = None,
    problems: list[Problem] | None = None,
) -> tuple[list[VideoRecord], list[str]]:
    """A Kinetics CSV as index-labelled records (see `parse_kinetics_csv`).

    Returns:
        (records, classes): ``classes`` as given, else the sorted label names.
    """
    named = parse_kinetics_csv(path, root=root, split=split, classes=classes, problems=problems)
    return _indexed(named, classes, path)


def parse_kinetics_csv(
    path: str | Path,
    *,
    root: str | Path,
    split: str | None = None,
    classes: Sequence[str] | None = None,
    problems: list[Problem] | None = None,
) -> list[NamedRecord]:
    """Read an official Kinetics CSV (`label,youtube_id,time_start,time_end[,split]`).

    Each row maps to `<youtube_id>_<start:06d>_<end:06d>.<ext>`, looked up under
    `<root>/<split>/<label>/` (label with spaces or underscores) and flat in `<root>/<split>/`.
    The extension is whatever is on disk (.mp4 preferred); a clip found nowhere gets the
    nested `.mp4` path so validation reports it missing.

    Args:
        path: The CSV file.
        root: Dataset root.
        split: Split directory under `root`; default: the row's `split` column, or none.
        classes: Class names; a row with another label is a bad row.
        problems: Collect bad rows here instead of raising `AnnotationError`.
    """
    path, root = Path(path), Path(root)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            table = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise AnnotationError(f"cannot read Kinetics CSV {path}: {e}") from e
    if not table:
        raise AnnotationError(f"{path}: empty file, expected header {','.join(KINETICS_COLUMNS)}")
    header = [h.strip() for h in table[0]]
    missing = [c for c in KINETICS_COLUMNS if c not in header]
    if missing:
        raise AnnotationError(f"{path}:1: header {header} lacks column(s) {missing}")
    col = {name: header.index(name) for name in header}
    rows, bad = [], []
    for lineno, row in enumerate(table[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}:{lineno}"
        if len(row) != len(header):
            bad.append(Problem("malformed", where, f"{len(row)} fields, header has {len(header)}"))
            continue
        label, youtube_id = row[col["label"]].strip(), row[col["youtube_id"]].strip()
        try:
            start, end = int(float(row[col["time_start"]])), int(float(row[col["time_end"]]))
        except ValueError:
            bad.append(Problem("malformed", where, "time_start/time_end are not numbers"))
            continue
        if not youtube_id or not label or start < 0 or end <= start:
            bad.append(Problem("malformed", where, f"bad row {','.join(row)!r}"))
            continue
        row_split = split
        if row_split is None:
            row_split = row[col["split"]].strip() if "split" in col else ""
        rows.append((lineno, label, youtube_id, start, end, row_split))
    known = set(classes) if classes is not None else None
    index, records = _DirIndex(), []
    for lineno, label, youtube_id, start, end, row_split in rows:
        if known is not None and label not in known:
            bad.append(Problem("unknown_label", f"{path}:{lineno}", f"unknown label {label!r}"))
            continue
        base = root / row_split if row_split else root
        nested = [base / label, base / label.replace(" ", "_")]
        stem = kinetics_filename(youtube_id, start, end, ext="")
        found = index.find([*nested, base], stem)
        video = found if found is not None else nested[0] / f"{stem}.mp4"
        records.append(NamedRecord(str(video), label, stem))
    raise_or_collect(bad, problems, path)
    return records


# ----------------------------------------------------------------------------- validation
@dataclass
class ValidationReport:
    """Everything wrong with a set of records, in one place."""

    total: int  # videos listed (rows parsed, including bad ones)
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        return Counter(p.kind for p in self.problems)

    @property
    def ok(self) -> bool:
        return not self.problems

    def bad_paths(self) -> set[str]:
        """Paths of videos that cannot be read (missing, empty or undecodable files)."""
        return {p.where for p in self.problems if p.kind in ("missing", "empty", "undecodable")}

    def summary(self) -> str:
        """One line, e.g. '342 of 19,881 videos missing, 2 malformed rows'."""
        c = self.counts()
        if not c:
            return f"all {self.total:,} videos OK"
        phrases = {
            "missing": "videos missing",
            "empty": "empty (0-byte) files",
            "undecodable": "videos that do not decode",
            "malformed": "malformed rows",
            "unknown_label": "unknown labels",
            "duplicate": "duplicates",
            "reencode_failed": "re-encoding failures",
        }
        parts = [f"{c[k]:,} {phrase}" for k, phrase in phrases.items() if c[k]]
        if c["missing"]:
            parts[0] = f"{c['missing']:,} of {self.total:,} videos missing"
            return ", ".join(parts)
        return ", ".join(parts) + f" ({self.total:,} videos listed)"

    def write(self, path: str | Path) -> None:
        """Write one tab-separated `kind  where  message` line per problem."""
        lines = [f"{p.kind}\t{p.where}\t{p.message}" for p in self.problems]
        Path(path).write_text("\n".join([self.summary(), *lines]) + "\n", encoding="utf-8")


def validate_records(
    records: Sequence[VideoRecord],
    *,
    problems: Sequence[Problem] = (),
    check_files: bool = True,
    report_path: str | Path | None = None,
) -> ValidationReport:
    """Count duplicates, missing and empty files, plus the rows the loaders collected.

    Args:
        records: Records from `load_video_list` / `load_kinetics_csv`.
        problems: Bad rows collected while parsing (their `problems=` list).
        check_files: Stat every file (disable for remote storage).
        report_path: Also write the problem list to this file.
    """
    found = list(problems)
    seen: set[str] = set()
    for record in records:
        if record.path in seen:
            found.append(Problem("duplicate", record.path, f"{record.video_id} listed again"))
            continue
        seen.add(record.path)
        if check_files:
            try:
                size = os.stat(record.path).st_size
            except OSError:
                found.append(Problem("missing", record.path, "file not found"))
                continue
            if size == 0:
                found.append(Problem("empty", record.path, "file has 0 bytes"))
    parse_rows = sum(p.kind in ("malformed", "unknown_label") for p in problems)
    report = ValidationReport(total=len(records) + parse_rows, problems=found)
    if report_path is not None:
        report.write(report_path)
    logger.info("annotation check: %s", report.summary())
    return report
