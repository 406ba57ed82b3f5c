"""Whether a built network computes what a weights file's network did: the ``build_model``
options a reader declares (``Reader.model_options``), read back from the model."""

from __future__ import annotations

from typing import Any

from torch import nn

from nlvideo.models.nl_groups import check_group_frames
from nlvideo.models.non_local import NLBlockND

# Model option -> NLBlockND attribute: the same in every Non-local block.
NL_ATTRS = {
    "nl_mode": "mode",
    "nl_pool_first": "pool_first",
    "nl_scale_logits": "scale_logits",
    "nl_sub_sample": "sub_sample",
}


class PretrainedArchitectureError(ValueError):
    """The model is not (or cannot be) the network a weights file needs: one line."""


def _stem_pool_pad(model: nn.Module) -> int | None:
    """Spatial padding of the stem's max-pool (None: the model has no such pool)."""
    pool = next((m for m in model.modules() if isinstance(m, nn.MaxPool3d)), None)
    if pool is None:
        return None
    padding = pool.padding if isinstance(pool.padding, tuple) else (pool.padding,) * 3
    return int(padding[-1])


def _group_frames(model: nn.Module, wanted: tuple[int, ...]) -> list[int] | None:
    """Per stage, the Non-local blocks' ``group_frames`` (the wanted value where a stage has
    none: nothing there could differ); None when a stage that must group has no such blocks
    (not a ``VideoResNet``, or other blocks there)."""
    stages = getattr(model, "stages", None)
    if stages is None or len(stages) != len(wanted):
        return None if any(wanted) else list(wanted)
    found = []
    for stage, value in zip(stages, wanted, strict=True):
        blocks = list(getattr(stage, "non_local", {}).values())
        if value and any(not isinstance(b, NLBlockND) for b in blocks):
            return None
        frames = {b.group_frames for b in blocks}
        found.append(frames.pop() if len(frames) == 1 else (-1 if frames else value))
    return found


def check_architecture(model: nn.Module, options: dict[str, Any], where: str) -> None:
    """Raise when ``model`` computes otherwise than the network ``options`` describe.

    Options this check knows: the Non-local semantics (``NL_ATTRS``), ``stem_pool_pad`` and
    ``nl_group_frames``; None values mean "the network's own" and are not checked.

    Raises:
        PretrainedArchitectureError: one line, ``where`` + " need" + the options and values.
    """
    blocks = [m for m in model.modules() if isinstance(m, NLBlockND)]
    wrong = {
        k
        for k, v in options.items()
        for b in blocks
        if k in NL_ATTRS and getattr(b, NL_ATTRS[k]) != v
    }
    impossible = []
    pad = options.get("stem_pool_pad")
    if pad is not None:
        have = _stem_pool_pad(model)
        if have is None:
            impossible.append("stem_pool_pad")
        elif have != pad:
            wrong.add("stem_pool_pad")
    if options.get("nl_group_frames") is not None:
        wanted = check_group_frames(options["nl_group_frames"])
        have_groups = _group_frames(model, wanted)
        if have_groups is None:
            impossible.append("nl_group_frames")
        elif tuple(have_groups) != wanted:
            wrong.add("nl_group_frames")

    def needed(keys: list[str] | set[str]) -> str:
        return ", ".join(f"model.{k}={options[k]}" for k in sorted(keys))

    if impossible:
        raise PretrainedArchitectureError(
            f"{where} need {needed(impossible)}, which this model ({type(model).__name__}) "
            "cannot take"
        )
    if wrong:
        raise PretrainedArchitectureError(
            f"{where} need {needed(wrong)}; the model differs, so its outputs would too"
        )
