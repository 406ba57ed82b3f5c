"""``list``: "path label" lists (data.train_list / data.val_list); labels are names or indices.

Index labels need a class file: ``data.class_index``, else ``classes.json`` / ``classes.txt``
/ ``classInd.txt`` beside the training list. Relative list paths are found from the working
directory or under ``data.root``; relative video paths join ``data.root`` (default: the
list's folder).
"""

from __future__ import annotations

from pathlib import Path

from nlvideo.data.annotations import parse_video_list
from nlvideo.data.classes import find_class_file, load_classes
from nlvideo.data.formats.base import LayoutData, LayoutOptions, resolve_list


def class_file_for(options: LayoutOptions, train_list: Path) -> Path | None:
    """``data.class_index`` (under data.root if relative and not found), else one beside."""
    if options.class_index:
        return resolve_list(options.class_index, options.root, "class_index")
    return find_class_file(train_list.parent)


def read(options: LayoutOptions) -> LayoutData:
    """Both lists, labels as class names."""
    for key in ("train_list", "val_list"):
        if not getattr(options, key):
            raise ValueError(f"data.format=list needs data.{key}")
    train_list = resolve_list(options.train_list, options.root, "train_list")
    val_list = resolve_list(options.val_list, options.root, "val_list")
    class_file = class_file_for(options, train_list)
    splits = []
    for path in (train_list, val_list):
        splits.append(
            parse_video_list(
                path, root=options.root, class_file=class_file, problems=options.problems
            )
        )
    return LayoutData(
        format="list",
        train=splits[0],
        val=splits[1],
        classes=load_classes(class_file) if class_file else None,
        source=f"{train_list} / {val_list}",
        notes=[f"class file {class_file}"] if class_file else [],
    )
