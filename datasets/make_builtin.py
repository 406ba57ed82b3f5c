"""Generate (or reuse) the built-in synthetic data set.

Eight classes that only temporal order tells apart (move left/right/up/down, rotate
clockwise/anticlockwise, grow/shrink), written as H.264 mp4 files with "path label" lists
and classes.json. Training generates it on its own (data.builtin=true); this script is for
looking at it or making a bigger one::

    python datasets/make_builtin.py --root data/big --num-train 4000 --num-val 800

Defaults are the built-in job's (``SyntheticConfig``), so with no arguments it makes, or finds,
exactly the set that ``python train.py`` uses.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from nlvideo.builtin import generate_builtin_dataset
from nlvideo.config import SyntheticConfig


def main(argv: Sequence[str] | None = None) -> int:
    job = SyntheticConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=job.root, help="output folder (cache)")
    parser.add_argument("--num-train", type=int, default=job.num_train)
    parser.add_argument("--num-val", type=int, default=job.num_val)
    parser.add_argument("--seed", type=int, default=job.seed)
    parser.add_argument("--size", type=int, default=job.size, help="frame width and height (even)")
    parser.add_argument("--min-frames", type=int, default=job.min_frames)
    parser.add_argument("--max-frames", type=int, default=job.max_frames)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    try:
        data = generate_builtin_dataset(
            args.root,
            num_train=args.num_train,
            num_val=args.num_val,
            seed=args.seed,
            size=args.size,
            min_frames=args.min_frames,
            max_frames=args.max_frames,
            fps=args.fps,
            workers=args.workers,
        )
    except ValueError as e:
        print(f"make_builtin: {e}", file=sys.stderr)
        return 2
    print(f"{data.root}: {len(data.classes)} classes ({time.perf_counter() - start:.1f} s)")
    print(f"  train list: {data.train_list}\n  val list:   {data.val_list}")
    print(f"  classes:    {data.classes_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
