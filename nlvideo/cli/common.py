"""What every command shares: logging, user-error exits, interrupts, quick file checks.

Every user mistake is reported here, in one format, with exit status 2::

    nlvideo-<cmd>: <file>[:<line>]: what is wrong
      <particular>          (rows with their line numbers, tensor names, changed keys, ...)
      ... and N more

The first line is the exception's first line; the particulars are its next lines (or its
``problems``), the first ``MAX_PARTICULARS`` of them and a count of the rest. Tracebacks only
with ``--debug`` or ``NLVIDEO_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

USAGE_ERROR = 2  # exit status of a user mistake (bad argument, key, file or list line)
INTERRUPTED = 130  # exit status after Ctrl-C, as a shell reports it
MAX_PARTICULARS = 10  # particulars shown under a one-line error
MAX_LINE = 300  # characters of one particular (a long list of tensor names is cut here)


def setup_logging(level: int) -> None:
    """Timestamped ``LEVEL name: message`` lines on stderr; silences import-time warnings."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # fvcore (under pytorchvideo) calls torch.jit.script at import time (nlvideo/__init__.py
    # filters it too; this covers imports made before nlvideo's).
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)


def debug_requested(flag: bool = False) -> bool:
    """``--debug`` or ``NLVIDEO_DEBUG=1`` (any value but "", "0", "false")."""
    return flag or os.environ.get("NLVIDEO_DEBUG", "").lower() not in ("", "0", "false", "no")


def format_error(prog: str, error: BaseException) -> str:
    """The one-line error and its first particulars (see the module docstring)."""
    lines = [line.rstrip() for line in str(error).strip().splitlines() if line.strip()]
    head = lines[0] if lines else type(error).__name__
    if head.startswith("[Errno") and getattr(error, "filename", None):  # OSError's own text
        head = f"{error.filename}: {getattr(error, 'strerror', '') or head}"
    problems = getattr(error, "problems", None)
    if problems:  # AnnotationError: every bad row, as file:line + message
        details = [f"{p.where}: {p.message}" for p in problems]
    else:
        details = [line.strip() for line in lines[1:]]
        if details and details[-1].startswith("... and ") and len(details) > MAX_PARTICULARS:
            details = details[:-1]  # our own count replaces the message's
    shown = [_cut(d) for d in details[:MAX_PARTICULARS]]
    if len(details) > MAX_PARTICULARS:
        shown.append(f"... and {len(details) - MAX_PARTICULARS} more")
    return "\n".join([f"{prog}: {head}", *(f"  {d}" for d in shown)])


def _cut(text: str) -> str:
    if len(text) <= MAX_LINE:
        return text
    return f"{text[:MAX_LINE]}... ({len(text) - MAX_LINE} more characters)"


def check_files(checks: Sequence[tuple[str, str | None]]) -> None:
    """Files named on the command line must exist and be files (before any heavy import).

    Args:
        checks: (option, path) pairs; empty paths are skipped.

    Raises:
        ValueError: ``<path>: does not exist (<option>)`` or ``...: is a directory ...``.
    """
    for option, value in checks:
        if not value:
            continue
        path = Path(value)
        if path.is_dir():
            raise ValueError(f"{path}: is a directory, expected a file ({option})")
        if not path.exists():
            raise ValueError(f"{path}: does not exist ({option})")


def run_command(
    prog: str,
    job: Callable[[], int],
    *,
    debug: bool = False,
    files: Sequence[tuple[str, str | None]] = (),
) -> int:
    """Run ``job``; a user mistake becomes ``format_error`` on stderr and exit status 2.

    User mistakes are ``ValueError`` (bad keys, values, lists and checkpoints; their messages
    name the key, file or line), ``FileNotFoundError`` and ``IsADirectoryError``. A run stopped
    by SIGINT / SIGTERM (``TrainingInterrupted``) prints its one line (on rank 0) and returns
    128 + the signal. With ``debug`` (or ``NLVIDEO_DEBUG=1``) mistakes propagate with their
    traceback.

    Args:
        prog: The command's name, the first word of every error line.
        job: The command's work; returns the exit status.
        debug: Show tracebacks.
        files: (option, path) pairs checked before ``job`` runs (see ``check_files``).
    """
    from nlvideo.engine.interrupt import TrainingInterrupted  # no torch: cheap

    try:
        check_files(files)
        return job()
    except TrainingInterrupted as e:
        if e.is_main:
            print(f"{prog}: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except (ValueError, FileNotFoundError, IsADirectoryError) as e:
        if debug_requested(debug):
            raise
        print(format_error(prog, e), file=sys.stderr)
        return USAGE_ERROR


def new_parser(
    prog: str, doc: str | None, *, epilog: str | None = None, checkpoint: bool = False
) -> argparse.ArgumentParser:
    """A command's parser: ``--debug`` (tracebacks of user mistakes), ``--checkpoint`` if asked.

    The description is the first paragraph of ``doc`` (the command module's docstring).
    """
    description = (doc or "").split("\n\n")[0].replace("``", "")
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog)
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks of errors (or NLVIDEO_DEBUG=1)"
    )
    if checkpoint:
        parser.add_argument("--checkpoint", required=True, help="nlvideo checkpoint (.pt)")
    return parser
