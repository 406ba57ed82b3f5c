"""Transfer experiment: does starting from a checkpoint of another task help? (test-sized, CPU)

Task A = the built-in data set's translations (move_left/right/up/down), task B = its
rotations and scalings (rotate_clockwise/anticlockwise, grow, shrink): other classes, other
motions, other videos. A tiny I3D-NL (``i3d_nl_tiny``) is trained on A once; then, for each
seed, the same network trains on B for the same number of steps

* from scratch,
* fine-tuned from the A checkpoint (every layer trains, new head),
* fine-tuned with ``train.freeze=res4`` (only res5 and the new head train; first seed only),

evaluating the video top-1 on B's held-out videos after every epoch. The table gives, per
run, the first step at which the video top-1 reached the target (90%) and the final
accuracy; the target of the issue is fine-tuned >= 90% in <= 1/4 of the steps scratch needs.

The A checkpoint's 4-way head is re-drawn as a new head (N(0, 0.01), bias 0) before
fine-tuning, as a checkpoint of another class list would get: its classes mean nothing on B.

Usage (results are written after every run; ~1,500 + 7 x 300 steps: about 30 min on 2 free
cores, several hours on a shared busy one — see experiments/README.md)::

    python experiments/transfer.py [--out runs/transfer] [--seeds 0,1,2] [KEY=VALUE ...]

Rows already in ``<out>/summary.json`` are kept and their runs skipped, so a second call can
add longer scratch runs (``--scratch-epochs``: does scratch reach 90% in 4x fine-tuning's steps?).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from nlvideo.builtin import generate_builtin_dataset
from nlvideo.config import load_config
from nlvideo.engine.checkpoint import load_checkpoint, save_checkpoint

TASK_A = ("move_left", "move_right", "move_up", "move_down")
TASK_B = ("rotate_clockwise", "rotate_anticlockwise", "grow", "shrink")
TARGET = 0.9

# Small and quick on a CPU: 32-pixel frames, 8 frames at stride 2, 2 test clips per video.
DATA = {"num_train": 960, "num_val": 160, "size": 32, "min_frames": 16, "max_frames": 20}
COMMON = [
    "model.name=i3d_nl_tiny",
    "data.builtin=false",
    "data.num_frames=8",
    "data.stride=2",
    "data.short_side=32",
    "data.train_scale=[32,36]",
    "data.crop_size=32",
    "data.test_scale=32",
    "data.num_clips=2",
    "data.num_crops=1",
    "data.flip=false",  # a mirrored move_left is a move_right, a mirrored cw rotation a ccw one
    "data.backend=pyav",
    "train.batch_size=8",
    "train.eval_batch_size=16",
    "train.eval_every=1",
    "train.device=cpu",
    "train.progress=false",
]


def write_task(data_root: Path, out: Path, classes: Sequence[str], per_class: int = 0) -> list[str]:
    """Lists (train.txt, val.txt) and classes.txt of the built-in videos of ``classes``.

    ``per_class`` > 0 keeps only the first ``per_class`` training videos of each class.

    Returns:
        Config overrides that read them.
    """
    out.mkdir(parents=True, exist_ok=True)
    all_classes = json.loads((data_root / "classes.json").read_text())
    for split in ("train", "val"):
        kept, count = [], dict.fromkeys(classes, 0)
        for line in (data_root / f"{split}.txt").read_text().splitlines():
            path, label = line.rsplit(maxsplit=1)
            name = all_classes[int(label)] if label.isdigit() else label
            if name in classes and not (split == "train" and 0 < per_class <= count[name]):
                count[name] += 1
                kept.append(f"{path} {name}\n")
        (out / f"{split}.txt").write_text("".join(kept))
    (out / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    return [
        f"data.root={data_root}",
        f"data.train_list={out / 'train.txt'}",
        f"data.val_list={out / 'val.txt'}",
        f"data.class_index={out / 'classes.txt'}",
    ]


def with_new_head(src: Path, dst: Path, seed: int) -> Path:
    """A copy of checkpoint ``src`` whose classifier is re-drawn as a new one (N(0, 0.01), 0)."""
    ckpt = load_checkpoint(src)
    gen = torch.Generator().manual_seed(seed)
    state = ckpt["model"]
    weight = [k for k in state if k.endswith("proj.weight")][-1]
    bias = weight.removesuffix("weight") + "bias"
    state[weight] = torch.randn(state[weight].shape, generator=gen) * 0.01
    state[bias] = torch.zeros_like(state[bias])
    save_checkpoint(dst, ckpt)
    return dst


def eval_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, video top-1) of every evaluation in a run's metrics.jsonl."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [(r["step"], r["video_top1"]) for r in records if r["kind"] == "eval"]


def steps_to(curve: Sequence[tuple[int, float]], target: float) -> int | None:
    """First evaluated step whose video top-1 is >= target (None: never)."""
    return next((step for step, acc in curve if acc >= target), None)


def run(overrides: Sequence[str]) -> float:
    """One training run (a fresh process state is not needed: every run seeds itself)."""
    from nlvideo.pipeline import run_training

    start = time.perf_counter()
    run_training(load_config(None, overrides))
    return (time.perf_counter() - start) / 60


def format_table(rows: list[dict]) -> str:
    head = f"{'run':<24}{'seed':>5}{'steps to 90%':>14}{'final top-1':>13}{'steps':>7}{'min':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        reached = "-" if r["steps_to_target"] is None else str(r["steps_to_target"])
        lines.append(
            f"{r['arm']:<24}{r['seed']:>5}{reached:>14}{100 * r['final']:>12.1f}%"
            f"{r['steps']:>7}{r['minutes']:>6.1f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fine-tuned vs from scratch on another task")
    parser.add_argument("--out", default="runs/transfer")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of the B runs")
    parser.add_argument("--pretrain-epochs", type=int, default=25, help="epochs on A (60 steps)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of every B run (20 steps)")
    parser.add_argument(
        "--scratch-epochs", type=int, default=0, help="epochs of the scratch runs (0: --epochs)"
    )
    parser.add_argument("--num-train", type=int, default=DATA["num_train"])
    parser.add_argument("--b-per-class", type=int, default=40, help="training videos per B class")
    parser.add_argument("overrides", nargs="*", help="config overrides shared by all runs")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    out = Path(args.out)
    data = generate_builtin_dataset(
        out / "data", **{**DATA, "num_train": args.num_train, "seed": 0}
    )
    task_a = write_task(data.root, out / "task_a", TASK_A)
    task_b = write_task(data.root, out / "task_b", TASK_B, per_class=args.b_per_class)
    common = [*COMMON, *args.overrides]

    pre_dir = out / "pretrain_a"
    if not (pre_dir / "last.pt").is_file():  # reused when it exists
        pre = [f"train.epochs={args.pretrain_epochs}", f"train.output_dir={pre_dir}"]
        minutes = run([*common, *task_a, *pre])
        print(f"pretrain on A: {minutes:.1f} min", flush=True)
    a_curve = eval_curve(pre_dir)
    print(f"task A video top-1 after pretraining: {a_curve[-1][1]:.3f}", flush=True)
    pretrained = with_new_head(pre_dir / "last.pt", out / "pretrained_a_new_head.pt", seed=0)

    seeds = [int(s) for s in args.seeds.split(",") if s]
    scratch_epochs = args.scratch_epochs or args.epochs
    scratch = "scratch" if scratch_epochs == args.epochs else f"scratch_{20 * scratch_epochs}steps"
    arms = [(arm, seed) for seed in seeds for arm in (scratch, "finetune")]
    arms.insert(2, ("finetune_freeze_res4", seeds[0]))  # after the first seed's pair
    summary = out / "summary.json"  # rows of earlier invocations are kept; their runs skipped
    rows: list[dict] = json.loads(summary.read_text())["rows"] if summary.is_file() else []
    for arm, seed in arms:
        if any((r["arm"], r["seed"]) == (arm, seed) for r in rows):
            continue
        run_dir = out / f"{arm}_seed{seed}"
        epochs = scratch_epochs if arm == scratch else args.epochs
        extra = [f"train.seed={seed}", f"train.epochs={epochs}"]
        if arm != scratch:
            extra.append(f"model.pretrained={pretrained}")
        if arm == "finetune_freeze_res4":
            extra.append("train.freeze=res4")
        minutes = run([*common, *task_b, *extra, f"train.output_dir={run_dir}"])
        curve = eval_curve(run_dir)
        rows.append(
            {
                "arm": arm,
                "seed": seed,
                "steps_to_target": steps_to(curve, TARGET),
                "final": curve[-1][1],
                "steps": curve[-1][0],
                "curve": curve,
                "minutes": minutes,
            }
        )
        print(format_table(rows[-1:]).splitlines()[-1], flush=True)
        summary.write_text(
            json.dumps({"task_a_top1": a_curve[-1][1], "rows": rows}, indent=1) + "\n"
        )
    table = format_table(rows)
    print("\n" + table)
    (out / "summary.txt").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
