"""Recipes in stages: a run whose ``model.pretrained`` is made by a first stage, run first.

``model.pretrained_recipe`` names the recipe that trains ``model.pretrained`` (e.g.
``configs/builtin/same_shape.yaml`` fine-tunes what ``shape_names.yaml`` trains). One command
then runs both: the first stage gets the command line's overrides too (``model.name``, seeds,
threads: both stages stay alike) but for the keys each stage has of its own (``STAGE_KEYS``),
and it must write the very file the second stage starts from. A first stage that already
finished is only evaluated again by the trainer; an interrupted one resumes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

from nlvideo.config import Config, check_paths, load_config, require_file

# What one stage sets for itself: where it starts from, where it writes, what it resumes.
STAGE_KEYS = (
    "model.pretrained",
    "model.pretrained_format",
    "model.pretrained_strict",
    "model.pretrained_recipe",
    "train.output_dir",
    "train.resume",
)


def training_stages(cfg: Config, overrides: Sequence[str] = ()) -> list[Config]:
    """The runs that make ``cfg``, first stages first, ``cfg`` last; their paths checked.

    Without ``model.pretrained_recipe`` (or without ``model.pretrained``: nothing to make)
    that is ``[cfg]``.

    Args:
        cfg: The run asked for, loaded with ``overrides``.
        overrides: The command line's dotlist; all but ``STAGE_KEYS`` apply to first stages.

    Raises:
        ValueError: one line naming the file or key: a missing recipe, a recipe that does not
            write ``model.pretrained``, a cycle, or a path of any stage (``check_paths``).
    """
    shared = [o for o in overrides if o.split("=", 1)[0].strip() not in STAGE_KEYS]
    stages, seen = [cfg], set()
    while (model := stages[0].model).pretrained_recipe and model.pretrained:
        recipe = Path(model.pretrained_recipe)
        require_file(recipe, "model.pretrained_recipe")
        if recipe.resolve() in seen:
            raise ValueError(f"{recipe}: a stage of its own first stages (model.pretrained_recipe)")
        seen.add(recipe.resolve())
        first = load_config(recipe, shared)
        writes = Path(first.train.output_dir) / "last.pt"
        if writes.resolve() != Path(model.pretrained).resolve():
            raise ValueError(
                f"model.pretrained={model.pretrained}: not what model.pretrained_recipe "
                f"({recipe}) writes, {writes}; set model.pretrained_recipe='' to start from "
                "that file as it is"
            )
        stages.insert(0, first)
    for i, stage in enumerate(stages):
        if i:  # its weights are the previous stage's, not written yet
            stage = copy.deepcopy(stage)
            stage.model.pretrained = ""
        check_paths(stage)
    return stages
