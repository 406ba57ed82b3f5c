"""``ssv2``: Something-Something v2 ``labels.json``, ``train.json``, ``validation.json``, webm.

The JSON files may carry the release's prefix (``something-something-v2-labels.json``...).
``labels.json`` maps each template to its index ({"Putting something on a surface": "0"});
each entry of ``train.json`` / ``validation.json`` has an "id" (the video ``<id>.webm``) and a
"template" whose ``[something]`` brackets dropped give the label. ``data.root`` holds the JSON
files (itself, ``labels/`` or ``annotations/``) and the videos (itself,
``20bn-something-something-v2/`` or ``videos/``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from nlvideo.data.annotations import VIDEO_EXTENSIONS, Problem, raise_or_collect
from nlvideo.data.classes import NamedRecord, load_classes
from nlvideo.data.formats.base import LayoutData, LayoutOptions, first_file, require_root

JSON_FOLDERS = ("", "labels", "annotations")
PREFIX = "something-something-v2-"  # the release's file names: something-something-v2-train.json
VIDEO_FOLDERS = ("20bn-something-something-v2", "videos", "")
_BRACKETS = re.compile(r"\[([^\]]*)\]")


def find_labels(root: Path) -> Path | None:
    """``labels.json`` beside a ``train.json`` (or the release's prefixed names)."""
    for prefix in ("", PREFIX):
        path = first_file([root / sub for sub in JSON_FOLDERS], (f"{prefix}labels.json",))
        if path is not None and (path.parent / f"{prefix}train.json").is_file():
            return path
    return None


def _videos(root: Path) -> Path:
    for sub in VIDEO_FOLDERS:
        folder = root / sub
        try:
            with os.scandir(folder) as entries:
                if any(os.path.splitext(e.name)[1].lower() in VIDEO_EXTENSIONS for e in entries):
                    return folder
        except OSError:
            continue
    return root


def template_label(template: str) -> str:
    """ "Putting [something] on a surface" -> "Putting something on a surface"."""
    return _BRACKETS.sub(r"\1", template)


def read_entries(path: Path, videos: Path, sink: list[Problem] | None) -> list[NamedRecord]:
    """The labelled videos of one SSv2 JSON file."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of videos")
    records, bad = [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
            bad.append(Problem("malformed", f"{path}[{i}]", "expected 'id' and 'template'"))
            continue
        video_id = str(entry["id"])
        label = template_label(str(entry["template"]))
        records.append(NamedRecord(str(videos / f"{video_id}.webm"), label, video_id))
    raise_or_collect(bad, sink, str(path))
    return records


def read(options: LayoutOptions) -> LayoutData:
    """Training and validation videos of an SSv2 root, labels as class names."""
    root = require_root(options, "ssv2")
    labels = find_labels(root)
    if labels is None:
        raise ValueError(f"data.format=ssv2: no labels.json beside train.json under {root}")
    prefix = PREFIX if labels.name.startswith(PREFIX) else ""
    train_json = labels.parent / f"{prefix}train.json"
    val_json = labels.parent / f"{prefix}validation.json"
    if not val_json.is_file():
        raise ValueError(f"data.format=ssv2: {val_json} does not exist")
    videos = _videos(root)
    return LayoutData(
        format="ssv2",
        train=read_entries(train_json, videos, options.problems),
        val=read_entries(val_json, videos, options.problems),
        classes=load_classes(labels),
        source=str(labels.parent),
        notes=[f"videos under {videos}"],
    )
