"""Stopping a run cleanly: SIGINT / SIGTERM finish the step, save, and say how to resume.

``StopSignals`` turns the first SIGINT or SIGTERM into a request that the training loop reads
after each step (every rank votes, so all stop at the same step); a second signal interrupts at
once (``KeyboardInterrupt``). The loop then saves a checkpoint and raises
``TrainingInterrupted``, which the command turns into one line and exit status 128 + signal.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """The run stopped on a signal after saving ``checkpoint``; ``command`` resumes it."""

    def __init__(self, signum: int, step: int, checkpoint: str, command: str, *, is_main: bool):
        self.signum, self.step, self.checkpoint, self.command = signum, step, checkpoint, command
        self.is_main = is_main  # only rank 0 prints
        name = signal.Signals(signum).name
        super().__init__(
            f"{name} at step {step}: checkpoint saved to {checkpoint}; resume with: {command}"
        )

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as a shell reports a process killed by it (130, 143)."""
        return 128 + self.signum


class StopSignals:
    """Context manager: the first SIGINT/SIGTERM sets ``signum``, a second one interrupts.

    Handlers are installed only in the main thread (elsewhere Python cannot take signals) and
    the previous ones are restored on exit.
    """

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum:
            raise KeyboardInterrupt
        self.signum = signum

    def votes(self) -> list[float]:
        """[SIGINT seen, SIGTERM seen] as numbers to sum over ranks."""
        return [float(self.signum == signal.SIGINT), float(self.signum == signal.SIGTERM)]

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def signal_from_votes(votes: list[float]) -> int:
    """The signal all ranks stop on (SIGINT wins); 0 when no rank saw one."""
    if votes[0] > 0:
        return int(signal.SIGINT)
    if votes[1] > 0:
        return int(signal.SIGTERM)
    return 0
