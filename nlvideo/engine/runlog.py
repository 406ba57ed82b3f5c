"""A run's logs: ``metrics.jsonl`` (one JSON record a line) and TensorBoard, on rank 0 only.

A resumed run drops the records written after its checkpoint (a crash can leave some), so no
step appears twice: rows past the step are removed from ``metrics.jsonl`` and TensorBoard is
told to purge them (``purge_step``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class RunLog:
    """metrics.jsonl + TensorBoard on rank 0; silent elsewhere."""

    def __init__(self, out_dir: Path | None, *, resume_step: int | None = None) -> None:
        """Open the logs of ``out_dir`` (None: a silent log, for ranks other than 0).

        Args:
            out_dir: The run folder.
            resume_step: The step of the checkpoint a resumed run continues from; records past
                it are dropped.
        """
        self.out_dir = out_dir
        self._tb = None
        if out_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            purge = None
            if resume_step is not None:
                drop_records_after(out_dir / "metrics.jsonl", resume_step)
                purge = resume_step + 1
                _after_existing_event_files(out_dir)
            self._tb = SummaryWriter(log_dir=str(out_dir), purge_step=purge)

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


def progress_line(summary: dict[str, float], lr: float) -> str:
    """One plain log line of a ``RunningStats.summary()`` (for logs that are not terminals)."""
    return (
        f"loss {summary['loss']:.4f} acc {summary['acc']:.3f} lr {lr:.3g} "
        f"{summary['clips_per_s']:.1f} clips/s data wait {summary['data_wait']:.0%}"
    )


def drop_records_after(path: Path, step: int) -> None:
    """Rewrite ``metrics.jsonl`` without records past ``step`` (and any torn last line)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a crash
            continue
        if record.get("step", 0) <= step:
            kept.append(line + "\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept))
    tmp.replace(path)


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


def _after_existing_event_files(out_dir: Path) -> None:
    """Wait (< 1 s) until a new TensorBoard file would sort after the folder's existing ones.

    Event files are named ``events.out.tfevents.<whole seconds>.<host>.<pid>...`` and read in
    name order; a resume within the same second as the run it continues could sort first, and
    the purge of the steps past the checkpoint would then apply to the wrong file.
    """
    names = [p.name.split(".") for p in out_dir.glob("events.out.tfevents.*")]
    stamps = [int(n[3]) for n in names if len(n) > 3 and n[3].isdigit()]
    while stamps and int(time.time()) <= max(stamps):
        time.sleep(0.05)
