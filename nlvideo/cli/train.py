"""nlvideo-train / python train.py: train a C2D/I3D (Non-local) video classifier, evaluate it.

A rerun into a run folder continues its ``last.pt`` if the config is the same but for the keys
in ``nlvideo.engine.resume.RESUMABLE_KEYS`` and refuses otherwise. ``--resume CKPT`` without
``--config`` continues CKPT with its stored config (overrides: resumable keys only). Ctrl-C or
SIGTERM finishes the step, saves ``last.pt`` and prints the command that resumes (exit 130/143).
A recipe with ``model.pretrained_recipe`` trains that first stage first, with the same overrides
(``nlvideo.config.stages``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nlvideo.cli.common import new_parser, run_command, setup_logging

if TYPE_CHECKING:
    from nlvideo.config import Config

PROG = "nlvideo-train"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = new_parser(
        PROG,
        __doc__,
        epilog="Without --config: the built-in CPU job (generated data, i3d_nl_tiny).",
    )
    parser.add_argument("--config", "-c", help="YAML recipe, e.g. configs/kinetics400/*.yaml")
    parser.add_argument(
        "--resume",
        help="checkpoint to continue, with its stored config unless --config is given "
        "(default: <train.output_dir>/last.pt if present)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. optim.lr=0.02"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    setup_logging(logging.INFO if rank == 0 else logging.WARNING)
    files = [("--resume", args.resume), ("--config", args.config)]
    return run_command(PROG, lambda: _train(args, rank), debug=args.debug, files=files)


def _train(args: argparse.Namespace, rank: int) -> int:
    from nlvideo.config import check_paths, config_to_yaml, load_config
    from nlvideo.config.stages import training_stages

    base = args.config
    if args.resume and not args.config:  # continue the checkpoint's own run
        from nlvideo.config import config_from_dict
        from nlvideo.engine.checkpoint import load_checkpoint

        base = config_from_dict(load_checkpoint(args.resume)["config"])
    cfg = load_config(base, args.overrides)
    if args.resume:
        cfg.train.resume = args.resume
    if args.print_config:
        print(config_to_yaml(cfg), end="")
        return 0
    # Paths are checked before the heavy imports: a mistyped path is reported at once.
    if args.resume:  # a resumed run already holds its first stage's weights
        check_paths(cfg)
        stages = [cfg]
    else:
        stages = training_stages(cfg, args.overrides)

    from tqdm.contrib.logging import logging_redirect_tqdm

    from nlvideo.pipeline import run_training

    for number, stage in enumerate(stages, 1):
        name = f"stage {number}/{len(stages)}: " if len(stages) > 1 else ""
        if name and rank == 0:
            print(f"{name}{stage.train.output_dir}")
        start = time.perf_counter()
        with logging_redirect_tqdm():
            metrics = run_training(stage)
        if rank == 0:
            _print_result(name, stage, metrics, (time.perf_counter() - start) / 60)
        if number < len(stages) and "scored" not in metrics:  # train.max_steps stopped it
            if rank == 0:
                print(f"{name}not finished: the next stage needs its end; rerun to continue it")
            return 0
    return 0


def _print_result(name: str, cfg: Config, metrics: dict, minutes: float) -> None:
    """Where the run went, how long it took, what it scored."""
    from nlvideo.metrics import format_percent

    print(f"{name}run folder: {cfg.train.output_dir}  ({minutes:.1f} min)")
    if metrics:
        print(
            f"clip top-1 {format_percent(metrics['clip_top1'], 1)}  "
            f"video top-1 {format_percent(metrics['video_top1'], 1)}  "
            f"({metrics['num_evaluated']}/{metrics['num_videos']} videos, "
            f"{len(metrics['failed'])} failed)"
        )
    if "scored" in metrics:
        print(scored_line(metrics["scored"]))


def scored_line(scored: dict) -> str:
    """Which checkpoint the numbers above are for, and what best.pt is."""
    best = (
        f"best.pt = epoch {scored['best_epoch']} ({100 * scored['best_video_top1']:.1f}% video "
        "top-1), chosen on this same validation set, so its score is optimistic"
        if scored["best_epoch"]
        else "no best.pt (no evaluation)"
    )
    return f"scored: {scored['checkpoint']} (after epoch {scored['epoch']}); {best}"


if __name__ == "__main__":
    sys.exit(main())
