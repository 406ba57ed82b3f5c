"""nlvideo-eval: multi-view evaluation of a checkpoint (clip, video, per-class accuracy).

Command line::

    nlvideo-eval --checkpoint runs/default/best.pt [--list val.txt --root /data]
        [--classes classes.json] [--out DIR] [data.num_clips=10 data.num_crops=3 ...]
    nlvideo-eval --checkpoint best.pt data.format=ucf101 data.root=/data/ucf101 data.split=2

The list's classes are matched to the checkpoint's by name: a subset of its classes is fine,
a class it does not know is an error. Index labels need a class file (--classes, else
classes.json / classes.txt / classInd.txt beside the list).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from nlvideo.cli.common import new_parser, run_command, setup_logging

PROG = "nlvideo-eval"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = new_parser(PROG, __doc__, checkpoint=True)
    parser.add_argument(
        "--list",
        default="",
        help="'path label' list or Kinetics CSV (default: the checkpoint config's validation list)",
    )
    parser.add_argument("--root", default=None, help="prefix for relative video paths")
    parser.add_argument(
        "--classes", default="", help="class file giving the list's index labels their names"
    )
    parser.add_argument("--out", default="", help="output folder (default: beside the checkpoint)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.num_clips=10")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nlvideo-eval``; returns the exit status."""
    args = parse_args(argv)
    setup_logging(logging.INFO)
    files = [("--checkpoint", args.checkpoint), ("--list", args.list)]
    return run_command(PROG, lambda: _evaluate(args), debug=args.debug, files=files)


def _evaluate(args: argparse.Namespace) -> int:
    from nlvideo.engine.report import format_report, save_report
    from nlvideo.pipeline import evaluate_checkpoint

    report, list_name = evaluate_checkpoint(
        args.checkpoint,
        list_path=args.list,
        root=args.root,
        class_file=args.classes,
        overrides=args.overrides,
    )
    if int(os.environ.get("RANK", "0")) == 0:  # every rank holds the same report
        out = Path(args.out or Path(args.checkpoint).parent / f"eval_{Path(list_name).stem}")
        json_path, png_path = save_report(report, out)
        print(f"checkpoint: {args.checkpoint}\nlist: {list_name}\n")
        print(format_report(report))
        print(f"\nreport: {json_path}\nconfusion matrix: {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
