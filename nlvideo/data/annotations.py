"""Video lists: Kinetics CSVs, PySlowFast "path label" lists, class indices, validation.

Parsing never raises from deep inside: every bad row becomes a `Problem` naming the file, the
line and what is wrong. By default the loaders raise one `AnnotationError` listing them; pass a
`problems` list to collect them instead, then `validate_records` adds duplicates and missing
files and summarises everything in one line ("342 of 19,881 videos missing").
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


@dataclass(frozen=True)
class VideoRecord:
    """One labelled video."""

    path: str  # resolved path to the video file
    label: int  # class index
    video_id: str  # unique, human-readable (file stem or list path)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an annotation row or a listed video."""

    kind: str  # "malformed" | "unknown_label" | "duplicate" | "missing" | "empty" | ...
    where: str  # "file:line" for rows, the video path for files
    message: str


class AnnotationError(ValueError):
    """A list or class file cannot be used; `problems` holds every bad row."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()):
        super().__init__(message)
        self.problems = list(problems)


def _raise_or_collect(problems: list[Problem], sink: list[Problem] | None, path: Path) -> None:
    if not problems:
        return
    if sink is not None:
        sink.extend(problems)
        return
    shown = "\n".join(f"  {p.where}: {p.message}" for p in problems[:10])
    more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
    raise AnnotationError(f"{len(problems)} bad row(s) in {path}:\n{shown}{more}", problems)


# ----------------------------------------------------------------------------- class index
def load_classes(path: str | Path) -> list[str]:
    """Class names in index order: a JSON list, a JSON {name: index} dict, or one name a line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise AnnotationError(f"cannot read class file {path}: {e}") from e
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise AnnotationError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e
        classes = _classes_from_json(data, path)
    else:
        classes = [line.strip() for line in text.splitlines() if line.strip()]
    duplicates = [name for name, n in Counter(classes).items() if n > 1]
    if duplicates:
        raise AnnotationError(f"{path}: duplicate class names {duplicates[:5]}")
    if not classes:
        raise AnnotationError(f"{path}: no class names")
    return classes


def _classes_from_json(data: object, path: Path) -> list[str]:
    if isinstance(data, list) and all(isinstance(x, str) for x in data):
        return list(data)
    if isinstance(data, dict):
        # {name: index} (PySlowFast) or {"index": name}.
        if all(isinstance(v, int) for v in data.values()):
            pairs = {int(v): str(k) for k, v in data.items()}
        elif all(isinstance(v, str) and str(k).isdigit() for k, v in data.items()):
            pairs = {int(k): v for k, v in data.items()}
        else:
            raise AnnotationError(f"{path}: expected {{name: index}} or {{index: name}}")
        if sorted(pairs) != list(range(len(data))):
            raise AnnotationError(f"{path}: class indices must be 0..{len(data) - 1} exactly once")
        return [pairs[i] for i in range(len(pairs))]
    raise AnnotationError(f"{path}: expected a JSON list of names or a name/index dict")


def save_classes(classes: Sequence[str], path: str | Path) -> None:
    """Write the class names as a JSON list (index = position)."""
    Path(path).write_text(json.dumps(list(classes), indent=1) + "\n", encoding="utf-8")


def _label_lookup(
    labels: Iterable[str], classes: Sequence[str] | None
) -> tuple[list[str], dict[str, int]]:
    """Class list (sorted label names when none is given) and a name -> index map."""
    if classes is None:
        names = sorted(set(labels))
        if names and all(x.lstrip("-").isdigit() for x in names):
            names = [str(i) for i in range(max(int(x) for x in names) + 1)]
        classes = names
    return list(classes), {name: i for i, name in enumerate(classes)}


def _resolve_label(raw: str, lookup: dict[str, int], num_classes: int) -> int | None:
    if raw in lookup:
        return lookup[raw]
    if raw.lstrip("-").isdigit() and 0 <= int(raw) < num_classes:
        return int(raw)
    return None


# ----------------------------------------------------------------------------- "path label"
def load_video_list(
    path: str | Path,
    *,
    root: str | Path | None = None,
    classes: Sequence[str] | None = None,
    problems: list[Problem] | None = None,
) -> tuple[list[VideoRecord], list[str]]:
    """Read a PySlowFast-style list: one `path label` per line.

    Fields are split at the last comma when the line has one (so labels may contain spaces),
    otherwise at the last whitespace (so paths may). The label is a class index or a class
    name. Blank lines and lines starting with '#' are skipped.

    Args:
        path: The list file.
        root: Directory that relative video paths are joined to (default: the list's directory).
        classes: Class names; without them, the sorted label names (or 0..max for int labels).
        problems: Collect bad rows here instead of raising `AnnotationError`.

    Returns:
        (records, classes).
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
    classes, lookup = _label_lookup((label for _, _, label in rows), classes)
    records = []
    for lineno, video, label in rows:
        index = _resolve_label(label, lookup, len(classes))
        if index is None:
            bad.append(Problem("unknown_label", f"{path}:{lineno}", f"unknown label {label!r}"))
            continue
        records.append(VideoRecord(str(root / video), index, video))
    _raise_or_collect(bad, problems, path)
    return records, classes


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
    """Read an official Kinetics CSV (`label,youtube_id,time_start,time_end[,split]`).

    Each row maps to `<youtube_id>_<start:06d>_<end:06d>.<ext>`, looked up under
    `<root>/<split>/<label>/` (label with spaces or underscores) and flat in `<root>/<split>/`.
    The extension is whatever is on disk (.mp4 preferred); a clip found nowhere gets the
    nested `.mp4` path so validation reports it missing.

    Args:
        path: The CSV file.
        root: Dataset root.
        split: Split directory under `root`; default: the row's `split` column, or none.
        classes: Class names; without them, the sorted label names of this CSV.
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
    classes, lookup = _label_lookup((r[1] for r in rows), classes)
    index, records = _DirIndex(), []
    for lineno, label, youtube_id, start, end, row_split in rows:
        if label not in lookup:
            bad.append(Problem("unknown_label", f"{path}:{lineno}", f"unknown label {label!r}"))
            continue
        base = root / row_split if row_split else root
        nested = [base / label, base / label.replace(" ", "_")]
        stem = kinetics_filename(youtube_id, start, end, ext="")
        found = index.find([*nested, base], stem)
        video = found if found is not None else nested[0] / f"{stem}.mp4"
        records.append(VideoRecord(str(video), lookup[label], stem))
    _raise_or_collect(bad, problems, path)
    return records, classes


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
        """Paths of videos that cannot be read (missing or empty files)."""
        return {p.where for p in self.problems if p.kind in ("missing", "empty")}

    def summary(self) -> str:
        """One line, e.g. '342 of 19,881 videos missing, 2 malformed rows'."""
        c = self.counts()
        if not c:
            return f"all {self.total:,} videos OK"
        phrases = {
            "missing": "videos missing",
            "empty": "empty (0-byte) files",
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


# ----------------------------------------------------------------------------- either format
def read_records(
    path: str | Path,
    *,
    root: str | Path | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[list[VideoRecord], list[str]]:
    """A Kinetics CSV (``.csv``) or a "path label" list; relative paths join ``root``.

    Without ``root``, paths are relative to the list's own folder (both formats).
    """
    if str(path).endswith(".csv"):
        return load_kinetics_csv(path, root=root if root else Path(path).parent, classes=classes)
    return load_video_list(path, root=root or None, classes=classes)
