"""A run's logs: ``metrics.jsonl`` (one JSON record a line) and TensorBoard, on rank 0 only."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class RunLog:
    """metrics.jsonl + TensorBoard on rank 0; silent elsewhere."""

    def __init__(self, out_dir: Path | None) -> None:
        self.out_dir = out_dir
        self._tb = None
        if out_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(out_dir))

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if self.out_dir is None:
            return
        record = {"kind": kind, "step": step, **values}
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in values.items():
            if isinstance(value, int | float) and math.isfinite(value):
                self._tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


@dataclass
class RunningStats:
    """Running sums for the progress bar / log interval (global over ranks)."""

    loss: float = 0.0
    correct: float = 0.0
    clips: float = 0.0
    wait: float = 0.0
    elapsed: float = 0.0

    def add(self, loss_sum: float, correct: float, clips: float, wait: float, dt: float) -> None:
        self.loss += loss_sum
        self.correct += correct
        self.clips += clips
        self.wait += wait
        self.elapsed += dt

    def summary(self) -> dict[str, float]:
        n = max(self.clips, 1.0)
        return {
            "loss": self.loss / n,
            "acc": self.correct / n,
            "clips_per_s": self.clips / max(self.elapsed, 1e-9),
            "data_wait": self.wait / max(self.elapsed, 1e-9),
        }
