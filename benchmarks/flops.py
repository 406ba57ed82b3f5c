"""Parameters and multiply-adds of named networks or recipes, counted on the meta device.

    python benchmarks/flops.py i3d_nl5_r50_32x2 i3d_nl5_r50 --frames 32
    python benchmarks/flops.py --recipes          # every configs/kinetics400 recipe, its options

Counts come from ``torch.utils.flop_counter`` over one forward of a (1, 3, T, 224, 224) clip,
with the NL blocks on their explicit path (every matmul of the affinity counted); reported as
GMACs (multiply-adds = FLOPs / 2, the convention of the paper, PySlowFast and mmaction2). No
weights are allocated and nothing runs on a device. For a ``*_32x2`` network, ``--recipes`` also
counts the 8x8-layout network of the same name at the same clip length (what these recipes built
before they used the paper's network).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from nlvideo.config import load_config
from nlvideo.models import MODELS, NLBlockND, build_model

RECIPES = Path(__file__).resolve().parents[1] / "configs" / "kinetics400"


def count(name: str, frames: int, size: int = 224, **options) -> tuple[int, float]:
    """(parameters, GMACs) of network ``name`` on one frames x size x size clip."""
    with torch.device("meta"):
        model = build_model(name, **options).eval()
        for block in model.modules():
            if isinstance(block, NLBlockND):
                block.use_fast_path = False
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, frames, size, size))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 2e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"networks, e.g. {', '.join(list(MODELS)[:3])}")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--recipes", action="store_true", help="every Kinetics recipe")
    args = parser.parse_args()
    for name in args.names:
        params, gmacs = count(name, args.frames)
        print(f"{name:22s} T={args.frames:<4d} {params:>11,d} params  {gmacs:8.2f} GMACs")
    if not args.recipes:
        return
    for path in sorted(RECIPES.glob("*.yaml")):
        cfg = load_config(path)
        options = cfg.model.model_kwargs(400)
        params, gmacs = count(cfg.model.name, cfg.data.num_frames, **options)
        line = f"{path.stem:20s} {cfg.model.name:20s} {params:>11,d} params  {gmacs:7.2f} GMACs"
        old = cfg.model.name.removesuffix("_32x2")
        if old != cfg.model.name and old in MODELS:
            _, before = count(old, cfg.data.num_frames, **options)
            line += f"  (8x8 layout at {cfg.data.num_frames} frames: {before:.2f})"
        print(line)


if __name__ == "__main__":
    main()
