"""Class names: class files, index labels turned into names, the class table, name mapping.

Inside nlvideo a label is a class name until the last moment (`to_records`). An index label
("3") means the class numbered 3 in a class file, and only then: without a class file a label
that looks like a number is an error, never a phantom class "3". A class file is a JSON list,
a JSON ``{name: index}`` / ``{"index": name}`` dict, one name a line, or numbered lines as
UCF101's ``classInd.txt`` ("1 ApplyEyeMakeup"), whose numbering is kept (1-based there).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

CLASS_FILE_NAMES = ("classes.json", "classes.txt", "classInd.txt")  # looked for beside a list
_NUMBERED = re.compile(r"^\s*(\d+)\s+(\S.*?)\s*$")


class AnnotationError(ValueError):
    """A list, class file or class table cannot be used; `problems` holds every bad row."""

    def __init__(self, message: str, problems: Sequence[object] = ()):
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class VideoRecord:
    """One labelled video."""

    path: str  # resolved path to the video file
    label: int  # class index
    video_id: str  # unique, human-readable (file stem or list path)


@dataclass(frozen=True)
class NamedRecord:
    """One video whose label is a class name (what every layout reader yields)."""

    path: str  # resolved path to the video file
    label: str  # class name
    video_id: str  # unique, human-readable (list path or file stem)


def looks_like_index(label: str) -> bool:
    """True for labels such as "3" or "-1" (class indices, not names)."""
    return label.lstrip("-").isdigit()


def load_class_numbering(path: str | Path) -> dict[str, str]:
    """``{index label: class name}`` of a class file, in index order.

    Raises:
        AnnotationError: unreadable, malformed, empty, or with a name or number twice.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(f"cannot read class file {path}: {e}") from e
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise AnnotationError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e
        pairs = _json_pairs(data, path)
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        numbered = [_NUMBERED.match(line) for line in lines]
        if lines and all(numbered):  # "1 ApplyEyeMakeup": keep the file's own numbering
            pairs = [(int(m.group(1)), m.group(2)) for m in numbered if m]
            numbers = sorted(n for n, _ in pairs)
            if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
                raise AnnotationError(
                    f"{path}: class numbers must run consecutively, got {numbers}"
                )
        else:
            pairs = list(enumerate(lines))
    if not pairs:
        raise AnnotationError(f"{path}: no class names")
    duplicates = [name for name, n in Counter(name for _, name in pairs).items() if n > 1]
    if duplicates:
        raise AnnotationError(f"{path}: duplicate class names {duplicates[:5]}")
    return {str(i): name for i, name in sorted(pairs)}


def _json_pairs(data: object, path: Path) -> list[tuple[int, str]]:
    if isinstance(data, list) and all(isinstance(x, str) for x in data):
        return list(enumerate(data))
    if isinstance(data, dict):
        # {name: index} (PySlowFast; SSv2's labels.json has the index as a string) or
        # {"index": name}.
        if all(isinstance(v, int) or (isinstance(v, str) and v.isdigit()) for v in data.values()):
            pairs = [(int(v), str(k)) for k, v in data.items()]
        elif all(isinstance(v, str) and str(k).isdigit() for k, v in data.items()):
            pairs = [(int(k), v) for k, v in data.items()]
        else:
            raise AnnotationError(f"{path}: expected {{name: index}} or {{index: name}}")
        if sorted(i for i, _ in pairs) != list(range(len(pairs))):
            raise AnnotationError(f"{path}: class indices must be 0..{len(pairs) - 1} exactly once")
        return pairs
    raise AnnotationError(f"{path}: expected a JSON list of names or a name/index dict")


def load_classes(path: str | Path) -> list[str]:
    """Class names of a class file, in index order."""
    return list(load_class_numbering(path).values())


def save_classes(classes: Sequence[str], path: str | Path) -> None:
    """Write the class names as a JSON list (index = position)."""
    Path(path).write_text(json.dumps(list(classes), indent=1) + "\n", encoding="utf-8")


def find_class_file(directory: str | Path) -> Path | None:
    """The first of ``classes.json``, ``classes.txt``, ``classInd.txt`` in ``directory``."""
    for name in CLASS_FILE_NAMES:
        if (Path(directory) / name).is_file():
            return Path(directory) / name
    return None


def label_to_name(label: str, numbering: dict[str, str] | None) -> str | None:
    """The class name a raw list label stands for, or None when it cannot be one.

    With a class file (``numbering``) an index label is its class and a name must be one of
    its classes; without one, any label but an index is a name.
    """
    if numbering is None:
        return None if looks_like_index(label) else label
    if looks_like_index(label):
        return numbering.get(str(int(label)))
    return label if label in numbering.values() else None


def index_label_error(
    label: str, numbering: dict[str, str] | None, class_file: str | Path | None
) -> str:
    """Message for a label that cannot be read (an index without class file, or unknown)."""
    if numbering is None and looks_like_index(label):
        names = " / ".join(CLASS_FILE_NAMES)
        return (
            f"label {label!r} looks like a class index but there is no class file: pass one "
            f"(--classes / data.class_index) or put {names} beside the list"
        )
    return f"unknown label {label!r}" + (f" (not in {class_file})" if class_file else "")


def class_table(
    train_labels: Iterable[str], classes: Sequence[str] | None = None, *, source: str = "data"
) -> list[str]:
    """The classes of a training set: ``classes`` (a file's order) or the sorted names.

    Raises:
        AnnotationError: a class has no training video, or a training label is not in ``classes``.
    """
    counts = Counter(train_labels)
    if not counts:
        raise AnnotationError(f"{source}: no training videos")
    if classes is None:
        return sorted(counts)
    unknown = sorted(set(counts) - set(classes))
    if unknown:
        raise AnnotationError(
            f"{source}: training labels not in the class file: {few_names(unknown)}"
        )
    empty = [name for name in classes if not counts[name]]
    if empty:
        raise AnnotationError(
            f"{source}: {len(empty)} class(es) with no training video: {few_names(empty)}"
        )
    return list(classes)


def unknown_classes(records: Iterable[NamedRecord], classes: Sequence[str]) -> list[str]:
    """Sorted labels of ``records`` that are not in ``classes``."""
    known = set(classes)
    return sorted({r.label for r in records if r.label not in known})


def few_names(names: Sequence[str], n: int = 10) -> str:
    """Up to ``n`` quoted names, then how many more."""
    shown = ", ".join(repr(x) for x in names[:n])
    return shown + (f" ... and {len(names) - n} more" if len(names) > n else "")


def to_records(
    records: Iterable[NamedRecord], classes: Sequence[str], *, source: str
) -> list[VideoRecord]:
    """Index the names by ``classes`` (the last step); any unknown name is an error listing all.

    Returns:
        ``VideoRecord``s, labels indexing ``classes``.

    Raises:
        AnnotationError: naming the classes of ``source`` that ``classes`` does not hold.
    """
    records = list(records)
    missing = unknown_classes(records, classes)
    if missing:
        raise AnnotationError(
            f"{source}: {len(missing)} class(es) not among the {len(classes)} known classes: "
            f"{few_names(missing)}"
        )
    index = {name: i for i, name in enumerate(classes)}
    return [VideoRecord(r.path, index[r.label], r.video_id) for r in records]
