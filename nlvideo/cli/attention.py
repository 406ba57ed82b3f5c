"""nlvideo-attention: what a Non-local block attends to (the paper's Figure 3) for any video.

Command line::

    nlvideo-attention a.mp4 b.mp4 --checkpoint runs/default/best.pt [--block NAME]
        [--query t,y,x ...] [--topk 20] [--out DIR]
    nlvideo-attention --pretrained I3D_NLN_8x8_R50.pyth model.name=i3d_nl5_r50
        [--config configs/kinetics400/i3d_nl5_r50_8x8.yaml] [--classes FILE] --video a.mp4

Published weights (``--pretrained``: pytorchvideo / PySlowFast ``.pyth``, Caffe2 ``.pkl``, ...)
are loaded strictly into ``model.name``; their test-time settings are the config's (defaults,
or --config, plus KEY=VALUE overrides), their class names --classes' (else class_<i>).

Runs one test view (the centre clip and crop of the model's test transform) and writes,
per video, ``NAME.png`` (the frames the block sees side by side, arrows from each query to
its top-k keys), ``NAME.gif`` (the first query's attention over all frames as a heat map)
and ``NAME.json`` (per query, its top-k keys as frame, y, x, weight). Positions are frame
indices of the clip and pixels of the model's input crop. Without --query, the queries are
where the block's response is strongest. An unreadable file is reported with its reason;
the others are still processed (exit status 1 if any failed, 2 for a bad argument).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nlvideo.cli.common import new_parser, run_command, setup_logging
from nlvideo.cli.model_source import (
    add_model_arguments,
    build_model_predictor,
    check_model_arguments,
    model_files,
    split_overrides,
)

if TYPE_CHECKING:
    import numpy as np

PROG = "nlvideo-attention"
MIN_PICTURE_SIDE = 160  # small crops are magnified to at least this height


def _query(text: str) -> tuple[int, float, float]:
    try:
        t, y, x = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected t,y,x (frame, row, column), got {text!r}"
        ) from None
    if t != int(t):
        raise argparse.ArgumentTypeError(f"the frame of a query must be an integer, got {text!r}")
    return int(t), y, x


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = new_parser(PROG, __doc__)
    add_model_arguments(p)
    p.add_argument(
        "items",
        nargs="*",
        metavar="VIDEO | KEY=VALUE",
        help="video files and config overrides (section.key=value, e.g. model.name=i3d_nl5_r50)",
    )
    p.add_argument("--video", action="append", default=[], help="a video file (repeatable)")
    p.add_argument("--block", help="Non-local block's module name (default: the first res3 one)")
    p.add_argument(
        "--query",
        type=_query,
        nargs="+",
        default=[],
        metavar="t,y,x",
        help="query positions: clip frame, row and column in the input crop",
    )
    p.add_argument("--num-queries", type=int, default=3, help="queries chosen without --query")
    p.add_argument("--topk", type=int, default=20, help="keys drawn per query (default 20)")
    p.add_argument("--out", default="attention", help="output folder (default ./attention)")
    p.add_argument("--device", default="cpu", help="cpu (default) | auto | cuda | cuda:N")
    args = p.parse_intermixed_args(argv)  # VIDEO and KEY=VALUE anywhere among the options
    args.overrides, videos = split_overrides(args.items)
    args.videos = videos + args.video
    if not args.videos:
        p.error("no video given")
    check_model_arguments(p, args, args.overrides)
    if args.topk < 1:
        p.error(f"--topk must be >= 1, got {args.topk}")
    if args.num_queries < 1:
        p.error(f"--num-queries must be >= 1, got {args.num_queries}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nlvideo-attention``; returns the exit status."""
    args = parse_args(argv)
    setup_logging(logging.WARNING)
    logging.getLogger("nlvideo.data").setLevel(logging.ERROR)  # failures are reported below
    return run_command(PROG, lambda: _attention(args), debug=args.debug, files=model_files(args))


def _attention(args: argparse.Namespace) -> int:
    from nlvideo.data.video import VideoError
    from nlvideo.models.hooks import find_block
    from nlvideo.vis import Point, attention_maps, clip_frames, save_attention

    one_view = [*args.overrides, "data.num_clips=1", "data.num_crops=1"]
    predictor, _, source = build_model_predictor(args, device=args.device, overrides=one_view)
    block, _ = find_block(predictor.model, args.block)  # a wrong name fails before any video
    queries = [Point(t, y, x) for t, y, x in args.query]
    stems: set[str] = set()
    failed = 0
    for path in args.videos:
        try:
            clips = predictor.read_clips(path)
        except VideoError as e:
            print(f"{PROG}: {path}: {e.reason}", file=sys.stderr)
            failed += 1
            continue
        view = predictor.transform(clips.to(predictor.device))[:1]  # (1, 3, T, S, S)
        result = attention_maps(
            predictor.model,
            view,
            block=block,
            queries=queries,
            num_queries=args.num_queries,
            k=args.topk,
        )
        stem = _unique(Path(path).stem, stems)
        top = predictor.topk(_softmax(result.logits), 1)[0]
        extra = {"video": str(path), **source, "top_class": top[0]}
        frames = clip_frames(view, predictor.transform.mean, predictor.transform.std)
        zoom = max(1, math.ceil(MIN_PICTURE_SIDE / frames.shape[1]))
        written = save_attention(result, frames, args.out, stem, zoom=zoom, extra=extra)
        print(
            f"{path}  block {result.block} ({result.mode}), predicted {top[0]} {100 * top[1]:.1f}%"
        )
        for q in result.to_json()["queries"]:
            best = q["keys"][0]
            print(
                f"  query t={q['frame']} y={q['y']:.0f} x={q['x']:.0f} -> strongest key "
                f"t={best['frame']} y={best['y']:.0f} x={best['x']:.0f} ({best['weight']:.3f})"
            )
        print("  " + "  ".join(str(p) for p in written.values()), flush=True)
    if failed:
        print(f"{PROG}: {failed} of {len(args.videos)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _unique(stem: str, seen: set[str]) -> str:
    name, i = stem, 1
    while name in seen:
        i += 1
        name = f"{stem}_{i}"
    seen.add(name)
    return name


def _softmax(logits: np.ndarray) -> np.ndarray:
    import numpy as np

    e = np.exp(logits - logits.max())
    return e / e.sum()


if __name__ == "__main__":
    sys.exit(main())
