"""Resuming a run: which checkpoint, whether it belongs to this config, and restoring its state.

A rerun into a run folder continues the run its ``last.pt`` holds, or refuses: the config it is
started with may differ from the checkpoint's stored config only in ``RESUMABLE_KEYS`` (keys
that change how long, where or how verbosely the run goes on, never what it computes).
Everything here runs before anything is written to the run folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nlvideo.config import config_from_dict, config_to_dict
from nlvideo.engine.checkpoint import load_checkpoint

# The ONE list of config keys that may differ between a checkpoint and the run resuming it.
RESUMABLE_KEYS: tuple[str, ...] = (
    "train.epochs",  # extend (or shorten) a run; the LR schedule follows the new length
    "train.max_steps",
    "train.output_dir",  # continue a copied checkpoint in another folder
    "train.resume",
    "train.device",
    "train.eval_every",
    "train.eval_batch_size",
    "train.log_every",
    "train.progress",
    "train.checkpoint_every",
    "data.num_workers",
)
# Keys that say which data (and so which classes) a run trains on.
_DATA_KEYS = ("data.", "synthetic.", "model.num_classes")


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flatten(value, f"{name}.")
        else:
            out[name] = value
    return out


def changed_keys(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ (``RESUMABLE_KEYS`` excepted), as ``key: old -> new``."""
    a, b = flatten(stored), flatten(current)
    keys = sorted((set(a) | set(b)) - set(RESUMABLE_KEYS))
    missing = "(absent)"
    return [
        f"{k}: {a.get(k, missing)!r} -> {b.get(k, missing)!r}"
        for k in keys
        if a.get(k, missing) != b.get(k, missing)
    ]


def resume_command(checkpoint: str | Path, world_size: int = 1) -> str:
    """The command line that continues the run of ``checkpoint`` with its stored config."""
    if world_size > 1:
        return f"torchrun --nproc_per_node={world_size} -m nlvideo.cli.train --resume {checkpoint}"
    return f"nlvideo-train --resume {checkpoint}"


def load_resume_checkpoint(
    output_dir: str | Path, resume: str, config: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The checkpoint a run continues from, checked against the run's config; None: fresh run.

    Args:
        output_dir: The run folder; its ``last.pt``, when present, is resumed automatically.
        resume: An explicit checkpoint (``--resume`` / ``train.resume``); "" = automatic.
        config: The run's config as a nested dict (``config_to_dict``).

    Returns:
        The loaded checkpoint with ``"path"`` (where it came from) and ``"explicit"`` added.

    Raises:
        ValueError: naming the checkpoint, when it is unreadable, is a directory, or was made
            with another config (the changed keys are listed, one a line, with the ways out).
        FileNotFoundError: an explicit checkpoint that does not exist.
    """
    explicit = bool(resume)
    path = Path(resume) if explicit else Path(output_dir) / "last.pt"
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected a checkpoint file (train.resume)")
    if not explicit and not path.exists():
        return None
    try:
        ckpt = load_checkpoint(path)
    except ValueError as e:
        if explicit:
            raise
        raise ValueError(
            f"{path}: cannot resume this run folder's checkpoint ({_first_line(e)}); delete it "
            f"to start afresh, resume an older one (--resume {path.with_name('best.pt')}), or "
            "set another train.output_dir"
        ) from e
    changed = changed_keys(_with_defaults(ckpt.get("config", {})), config)
    if changed:
        names = ", ".join(c.split(":")[0] for c in changed)
        other_data = any(c.startswith(_DATA_KEYS) for c in changed)
        hint = (
            f"; to fine-tune its weights on other data use model.pretrained={path} instead"
            if explicit and other_data
            else ""
        )
        raise ValueError(
            f"{path}: checkpoint was made with another config ({names} changed); continue it "
            f"with its stored config: {resume_command(path)}, or start a new run with another "
            f"train.output_dir{hint} (keys that may change on resume: "
            f"{', '.join(RESUMABLE_KEYS)})\n" + "\n".join(f"  {c}" for c in changed)
        )
    return {**ckpt, "path": str(path), "explicit": explicit}


def check_resume_classes(ckpt: Mapping[str, Any], model_name: str, classes: Sequence[str]) -> None:
    """The checkpoint's network and class table must be the run's.

    Raises:
        ValueError: naming the checkpoint and both sides; for an explicit ``--resume`` it says
            that ``model.pretrained`` is the way to fine-tune on other data.
    """
    if ckpt["model_name"] == model_name and list(ckpt["classes"]) == list(classes):
        return
    path = ckpt["path"]
    hint = (
        f"; to fine-tune its weights on this data use model.pretrained={path} instead of --resume"
        if ckpt.get("explicit")
        else "; start a new run with another train.output_dir"
    )
    raise ValueError(
        f"{path}: checkpoint holds a {ckpt['model_name']!r} model for {len(ckpt['classes'])} "
        f"classes, but this run trains {model_name!r} on {len(classes)} classes{hint}"
    )


def check_resume_world_size(ckpt: Mapping[str, Any], world_size: int) -> None:
    """The checkpoint must be continued by as many ranks as wrote it (one RNG state each).

    Another world size is another run: another global batch, another split of each epoch
    among the ranks (a mid-epoch checkpoint would skip or repeat videos) and no RNG state per
    rank, so the result would differ from the run's without a word.

    Raises:
        ValueError: naming the checkpoint, both world sizes and the command that continues it.
    """
    ranks = len(ckpt["rng"])
    if ranks == world_size:
        return
    path = ckpt["path"]
    raise ValueError(
        f"{path}: checkpoint was written by {ranks} rank(s), this run has {world_size}: another "
        f"world size changes the global batch and each epoch's split among the ranks; continue "
        f"it with {resume_command(path, ranks)}, or start a new run from its weights with "
        f"model.pretrained={path} and another train.output_dir"
    )


def restore_training_state(
    ckpt: Mapping[str, Any], *, model: Any, optimizer: Any, schedule: Any, scaler: Any
) -> None:
    """Load weights, optimiser, schedule and scaler states from ``ckpt`` (in place).

    Raises:
        ValueError: naming the checkpoint, with the error's particulars on the next lines.
    """
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise ValueError(
            f"{ckpt['path']}: checkpoint does not fit this run's model/optimiser\n{e}"
        ) from e
    schedule.load_state_dict(ckpt["scheduler"])
    if ckpt["scaler"]:  # empty when saved without fp16
        scaler.load_state_dict(ckpt["scaler"])


def _with_defaults(stored: Mapping[str, Any]) -> Mapping[str, Any]:
    """A stored config with the keys added since it was written set to their defaults."""
    try:
        return config_to_dict(config_from_dict(dict(stored)))
    except ValueError:  # keys this version does not know: compare as stored
        return stored


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
