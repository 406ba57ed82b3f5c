"""Sanity experiment: does the network use temporal order?

Trains c2d_tiny (2-D kernels only, no Non-local block: blind to frame order, since only the
global average pool mixes time), i3d_tiny (3-D kernels) and i3d_nl_tiny (3-D kernels +
Non-local blocks) on the built-in data set with the same budget, and prints video accuracy:
overall, "pair" accuracy (the right time-reversal pair, i.e. motion type: horizontal,
vertical, rotation, scale) and direction accuracy within the right pair (chance: 50%).

Every clip of the data set's second class in a pair is the time reversal of a clip of the
first, so a time-order-blind model can find the pair but must guess the direction: C2D
should stay near 50% on directions (overall ~50%), I3D and I3D-NL well above.

Usage (CPU: the built-in job three times, ~20 min on 2 cores)::

    python experiments/temporal_sanity.py [--out runs/temporal_sanity] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nlvideo.builtin import REVERSED_CLASS
from nlvideo.config import load_config
from nlvideo.metrics import format_percent
from nlvideo.pipeline import run_training

_pct = functools.partial(format_percent, digits=1)  # table cells: one decimal

MODELS = ("c2d_tiny", "i3d_tiny", "i3d_nl_tiny")


def pair_metrics(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> dict[str, float]:
    """Accuracy of the time-reversal pair and of the direction within the right pair.

    Returns:
        ``pair_accuracy`` (prediction in the true class's pair), ``direction_accuracy``
        (right class among videos whose pair is right) and ``pair_<a>|<b>`` (top-1 on the
        videos of each pair).
    """
    cm = np.asarray(confusion, dtype=np.int64)
    index = {c: i for i, c in enumerate(classes)}
    partner = np.array([index[REVERSED_CLASS[c]] for c in classes])
    total = cm.sum()
    correct = np.trace(cm)
    in_pair = correct + cm[np.arange(len(classes)), partner].sum()
    out = {
        "pair_accuracy": in_pair / total if total else float("nan"),
        "direction_accuracy": correct / in_pair if in_pair else float("nan"),
    }
    for i, c in enumerate(classes):
        j = partner[i]
        if i < j:
            videos = cm[i].sum() + cm[j].sum()
            right = cm[i, i] + cm[j, j]
            out[f"pair_{c}|{classes[j]}"] = right / videos if videos else float("nan")
    return out


_SHORT = {"move_": "", "rotate_clockwise": "cw", "rotate_anticlockwise": "ccw"}


def _short(name: str) -> str:
    for long, short in _SHORT.items():
        name = name.replace(long, short)
    return name


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """One line per model: video top-1, pair and direction accuracy, per-pair top-1."""
    pair_keys = [k for k in next(iter(rows.values())) if k.startswith("pair_") and "|" in k]
    titles = ["/".join(_short(c) for c in k.removeprefix("pair_").split("|")) for k in pair_keys]
    head = f"{'model':<13}{'video top-1':>12}{'pair acc':>10}{'direction':>11}"
    head += "".join(f"{t:>13}" for t in titles) + f"{'minutes':>9}"
    lines = [head, "-" * len(head)]
    for model, r in rows.items():
        line = f"{model:<13}{_pct(r['video_top1']):>12}{_pct(r['pair_accuracy']):>10}"
        line += f"{_pct(r['direction_accuracy']):>11}"
        line += "".join(f"{_pct(r[k]):>13}" for k in pair_keys) + f"{r['minutes']:>9.1f}"
        lines.append(line)
    lines.append(
        "pair acc: prediction in the true time-reversal pair; direction: right class among those"
        " (chance 50%); per pair: top-1 on that pair's videos"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="C2D vs I3D vs I3D-NL on time-reversed classes")
    parser.add_argument("--out", default="runs/temporal_sanity", help="folder of the three runs")
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}"
    )
    parser.add_argument("overrides", nargs="*", help="config overrides shared by all models")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {list(MODELS)}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    rows: dict[str, dict[str, float]] = {}
    for name in models:
        overrides = [
            f"model.name={name}",
            f"train.output_dir={Path(args.out) / name}",
            "data.flip=false",  # a horizontal flip turns move_left into move_right, cw into ccw
            "train.progress=false",
            *args.overrides,
        ]
        cfg = load_config(None, overrides)
        start = time.perf_counter()
        report = run_training(cfg)
        minutes = (time.perf_counter() - start) / 60
        rows[name] = {
            "video_top1": report["video_top1"],
            "clip_top1": report["clip_top1"],
            **pair_metrics(report["confusion"], report["classes"]),
            "minutes": minutes,
            "failed": len(report["failed"]),
        }
        print(f"{name}: video top-1 {_pct(report['video_top1'])} ({minutes:.1f} min)", flush=True)
    table = format_table(rows)
    print("\n" + table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "summary.txt").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
