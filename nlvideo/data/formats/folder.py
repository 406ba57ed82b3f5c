"""``folder``: your own videos in class folders, ``root/<class>/*.{mp4,avi,mkv,webm,mov}``.

Without lists the videos are split per class (stratified) by ``data.val_fraction``: the
files of each class, sorted by name, are shuffled with a generator seeded by
(``train.seed``, class name) and the first ``round(n * val_fraction)`` are held out (at
least one when the class has two or more videos; never the last one). The training
pipeline writes the split into the run folder as lists, so it can be reproduced and
evaluated later (``data.format=list``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from nlvideo.data.classes import NamedRecord
from nlvideo.data.formats.base import LayoutData, LayoutOptions, require_root, subdirs, video_files


def class_folders(root: Path) -> dict[str, list[Path]]:
    """``{class: videos}`` of every visible sub-folder that holds videos."""
    return {d.name: files for d in subdirs(root) if (files := video_files(d))}


def split_class(files: list[Path], name: str, val_fraction: float, seed: int) -> tuple[list, list]:
    """(train, val) files of one class; deterministic in (seed, name, file names)."""
    key = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(key[:8], "little"))
    order = [files[i] for i in rng.permutation(len(files))]
    n_val = round(len(files) * val_fraction)
    n_val = min(max(n_val, 1), len(files) - 1) if len(files) >= 2 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


def read(options: LayoutOptions) -> LayoutData:
    """Class folders under ``data.root``, split by ``data.val_fraction`` and the seed."""
    root = require_root(options, "folder")
    classes = class_folders(root)
    empty = [d.name for d in subdirs(root) if d.name not in classes]
    if empty:
        raise ValueError(
            f"data.format=folder: class folder(s) with no videos under {root}: {empty[:10]}"
        )
    if not classes:
        raise ValueError(f"data.format=folder: no class folders with videos under {root}")
    train: list[NamedRecord] = []
    val: list[NamedRecord] = []
    for name, files in classes.items():
        fit, held = split_class(files, name, options.val_fraction, options.seed)
        train += [NamedRecord(str(p), name, str(p.relative_to(root))) for p in fit]
        val += [NamedRecord(str(p), name, str(p.relative_to(root))) for p in held]
    return LayoutData(
        format="folder",
        train=train,
        val=val,
        source=str(root),
        notes=[
            f"{len(train)} training / {len(val)} held-out videos (val_fraction "
            f"{options.val_fraction}, seed {options.seed})"
        ],
    )
