"""What every command shares: logging, the import-time warning filter, user-error exits."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable

USAGE_ERROR = 2  # exit status of a user mistake (bad argument, key, file or list line)
PARTICULARS = 5  # indented lines of an error message shown after its first line
INTERRUPTED = 130  # exit status after Ctrl-C, as a shell reports it


def setup_logging(level: int) -> None:
    """Timestamped ``LEVEL name: message`` lines on stderr; silences import-time warnings."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # fvcore (under pytorchvideo) calls torch.jit.script at import time; the filter must be
    # in place before the first import of nlvideo.models.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)


def run_command(prog: str, job: Callable[[], int], *, debug: bool = False) -> int:
    """Run ``job``; a user mistake becomes one line on stderr (plus up to ``PARTICULARS``
    indented lines of particulars) and exit status 2.

    User mistakes are ``ValueError`` (bad keys, values, lists and checkpoints; their messages
    name the key, file or line) and ``FileNotFoundError``. With ``debug`` they propagate with
    their traceback.
    """
    try:
        return job()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except (ValueError, FileNotFoundError) as e:
        if debug:
            raise
        lines = str(e).strip().splitlines() or [type(e).__name__]
        # The first line, then the first few indented particulars (e.g. tensors that differ).
        particulars = [line for line in lines[1:] if line.startswith("  ")][:PARTICULARS]
        print("\n".join([f"{prog}: error: {lines[0]}", *particulars]), file=sys.stderr)
        return USAGE_ERROR


def new_parser(
    prog: str, doc: str | None, *, epilog: str | None = None, checkpoint: bool = False
) -> argparse.ArgumentParser:
    """A command's parser: ``--debug`` (tracebacks of user mistakes), ``--checkpoint`` if asked.

    The description is the first paragraph of ``doc`` (the command module's docstring).
    """
    description = (doc or "").split("\n\n")[0].replace("``", "")
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    if checkpoint:
        parser.add_argument("--checkpoint", required=True, help="nlvideo checkpoint (.pt)")
    return parser
