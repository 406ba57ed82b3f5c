"""Training engine: the loop (``run_training``), checkpoints, DDP helpers, optimiser/schedule.

``run_training`` is imported lazily so that ``nlvideo.eval`` can use the checkpoint helpers
without importing the trainer (which imports ``nlvideo.eval``).
"""

from __future__ import annotations

from typing import Any

from nlvideo.engine.checkpoint import (
    build_model_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

__all__ = ["build_model_from_checkpoint", "load_checkpoint", "run_training", "save_checkpoint"]


def __getattr__(name: str) -> Any:
    if name == "run_training":
        from nlvideo.engine.trainer import run_training

        return run_training
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
