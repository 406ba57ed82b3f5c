"""The two-object tasks trained from frames rendered in memory: no codec, no loader.

A fast check of what makes ``same_shape`` / ``same_colour`` learnable (experiments/README.md,
"Why same_shape does not take off"). The recipe's model, optimiser, LR schedule, batch size
and steps come from ``load_config(recipe, overrides)``; only the data path differs: clips are
``render_dataset_clip``'s frames (no H.264 round trip, no decoding), normalised like the test
transform and flipped at random like the training one. ``--label s2_shape`` swaps the label for
a first-order control (name S2's shape, 3 classes), ``--radius`` the shapes' size range.

    python experiments/in_memory_pairs.py --recipe configs/builtin/same_shape.yaml
    python experiments/in_memory_pairs.py model.name=i3d_tiny synthetic.size=64 ...
    python experiments/in_memory_pairs.py --recipe configs/builtin/same_shape.yaml \\
        --label s2_shape train.iterations=400

Each run appends one JSON line (its arguments, the held-out curve, final accuracies, seconds)
to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nlvideo.builtin import same_shape
from nlvideo.builtin.generate import SyntheticParams, render_dataset_clip
from nlvideo.config import load_config
from nlvideo.data import KINETICS_MEAN, KINETICS_STD
from nlvideo.engine.optim import build_optimizer, build_schedule
from nlvideo.models import build_model

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "builtin" / "same_colour.yaml"
LABELS = ("task", "s2_shape")  # the task's own label, or S2's shape (3 classes)


def compared_pair(truth: same_shape.SameShapeClip, task: str) -> str:
    """The two compared values of a clip, unordered, e.g. "disk-square" or "0-2" (palette)."""
    if task == "same_shape":
        values = truth.shapes
    else:
        palette = np.asarray(same_shape.PALETTE)
        values = tuple(str(int(np.abs(palette - c).max(1).argmin())) for c in truth.colours)
    return "-".join(sorted(values))


def render_split(params: SyntheticParams, split: str, count: int, label: str):
    """(N, 3, T, H, W) normalised float clips, their labels and compared pairs, in memory."""
    clips, labels, pairs = [], [], []
    for index in range(count):
        name, frames, truth = render_dataset_clip(params, split, index)
        clips.append(frames)
        pairs.append(compared_pair(truth, params.task))
        labels.append(
            same_shape.CLASSES.index(name)
            if label == "task"
            else same_shape.SHAPES.index(truth.shapes[1])
        )
    x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float() / 255
    mean = torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1)
    return (x - mean) / std, torch.tensor(labels), pairs


def predict(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(x[i : i + 100]).argmax(1) for i in range(0, len(x), 100)])
    model.train()
    return out


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


def accuracy_by_pair(model: torch.nn.Module, x, y, pairs: list[str]) -> dict[str, float]:
    """Held-out accuracy per compared pair: a plateau that confuses two values shows here."""
    hits = (predict(model, x) == y).tolist()
    by_pair: dict[str, list[bool]] = {}
    for hit, pair in zip(hits, pairs, strict=True):
        by_pair.setdefault(pair, []).append(hit)
    return {pair: round(sum(h) / len(h), 4) for pair, h in sorted(by_pair.items())}


def train(cfg, label: str, eval_every: int) -> dict:
    """Train the recipe's network on in-memory clips; the held-out curve and final numbers."""
    s = cfg.synthetic
    params = SyntheticParams(
        s.num_train, s.num_val, s.seed, s.size, s.min_frames, s.max_frames, 25, 18, 12,
        task=s.task, min_distance=s.min_distance, max_distance=s.max_distance,
    )  # fmt: skip
    start = time.perf_counter()
    x_train, y_train, _ = render_split(params, "train", s.num_train, label)
    x_val, y_val, val_pairs = render_split(params, "val", s.num_val, label)
    torch.manual_seed(cfg.train.seed)
    num_classes = len(same_shape.CLASSES) if label == "task" else len(same_shape.SHAPES)
    model = build_model(cfg.model.name, **cfg.model.model_kwargs(num_classes=num_classes))
    optimizer = build_optimizer(model, cfg.optim)
    batch = cfg.train.batch_size
    schedule = build_schedule(optimizer, cfg.optim, cfg.train, len(x_train) // batch)
    generator = torch.Generator().manual_seed(cfg.train.seed)
    curve, step = [], 0
    while step < cfg.train.iterations:
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i : i + batch]
            flip = torch.rand(len(idx), generator=generator) < 0.5
            xb = torch.where(flip.view(-1, 1, 1, 1, 1), x_train[idx].flip(-1), x_train[idx])
            loss = F.cross_entropy(model(xb), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % eval_every == 0 or step == cfg.train.iterations:
                curve.append((step, round(loss.item(), 4), accuracy(model, x_val, y_val)))
                print(*curve[-1], flush=True)
            if step == cfg.train.iterations:
                break
    return {
        "held_out": curve[-1][2],
        "train": accuracy(model, x_train[:400], y_train[:400]),
        "curve": curve,
        "held_out_by_pair": accuracy_by_pair(model, x_val, y_val, val_pairs),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(RECIPE), help="a same_shape / same_colour recipe")
    parser.add_argument("--label", choices=LABELS, default="task")
    parser.add_argument("--radius", default="", help='shape radius range in px, e.g. "10,16"')
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: torch's)")
    parser.add_argument("--out", default="runs/in_memory_pairs.jsonl")
    parser.add_argument("overrides", nargs="*", help="config overrides, section.key=value")
    args = parser.parse_args(argv)
    if args.radius:
        same_shape.RADIUS_RANGE = tuple(float(v) for v in args.radius.split(","))
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.recipe, args.overrides)
    result = train(cfg, args.label, args.eval_every)
    line = {
        "recipe": Path(args.recipe).name,
        "overrides": args.overrides,
        "label": args.label,
        "radius": list(same_shape.RADIUS_RANGE),
        **result,
    }
    print(json.dumps(line))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
