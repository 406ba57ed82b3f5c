"""Data layouts: one reader per layout, picked by ``data.format``; labels are class names.

Each module turns one layout into a ``LayoutData`` (train and validation records whose labels
are class names, and the layout's own class order when it has one). Adding a layout is one
file plus one entry in ``FORMATS``. ``auto`` recognises each layout from the files it finds
and logs which it chose.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from nlvideo.data.formats import folder, hmdb51, kinetics, listfile, ssv2, ucf101
from nlvideo.data.formats.base import LayoutData, LayoutOptions

logger = logging.getLogger(__name__)

FORMATS: dict[str, Callable[[LayoutOptions], LayoutData]] = {
    "kinetics": kinetics.read,
    "list": listfile.read,
    "ucf101": ucf101.read,
    "hmdb51": hmdb51.read,
    "ssv2": ssv2.read,
    "folder": folder.read,
}
CHOICES = ("auto", *FORMATS)


def detect(options: LayoutOptions) -> tuple[str, str]:
    """The layout of ``options`` and why: (name, what was found).

    Raises:
        ValueError: nothing recognisable.
    """
    lists = [x for x in (options.train_list, options.val_list) if x]
    if lists:
        if all(x.endswith(".csv") for x in lists):
            return "kinetics", "data.train_list / data.val_list are CSV files"
        return "list", "data.train_list / data.val_list are given"
    root = options.root
    if root is None:
        raise ValueError(
            "data.builtin=false needs data.root (a data set folder) or data.train_list"
        )
    if not root.is_dir():
        raise ValueError(f"data.root: {root} is not a directory")
    if (found := ucf101.find_lists(root)) is not None:
        return "ucf101", f"{found / 'classInd.txt'}"
    if (found := hmdb51.find_splits(root)) is not None:
        return "hmdb51", f"{found}"
    if (found := ssv2.find_labels(root)) is not None:
        return "ssv2", f"{found}"
    if (found := kinetics.find_csv(root, kinetics.TRAIN_NAMES)) is not None:
        return "kinetics", f"{found}"
    if folder.class_folders(root):
        return "folder", f"class folders with videos in {root}"
    raise ValueError(
        f"data.format=auto: cannot tell the layout of {root} (looked for "
        "ucfTrainTestlist/classInd.txt, testTrainMulti_7030_splits/, labels.json + train.json, "
        "train.csv, class folders with videos); set data.format"
    )


def read_layout(fmt: str, options: LayoutOptions) -> LayoutData:
    """Read the layout ``fmt`` (or the detected one for "auto")."""
    if fmt == "auto":
        fmt, found = detect(options)
        logger.info("data.format=auto: found %s, reading %s as %s", found, options.root, fmt)
    if fmt not in FORMATS:
        raise ValueError(f"data.format: expected one of {list(CHOICES)}, got {fmt!r}")
    data = FORMATS[fmt](options)
    for note in data.notes:
        logger.info("data.format=%s: %s", data.format, note)
    return data


__all__ = ["CHOICES", "FORMATS", "LayoutData", "LayoutOptions", "detect", "read_layout"]
