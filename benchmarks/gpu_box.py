"""What a GPU box spends waiting for data: a short training run on generated Kinetics-like videos.

    python benchmarks/gpu_box.py [--videos 64] [--workers 16] [--steps 60] [--batch 8] [overrides]

Writes 340x256 H.264 videos (``benchmarks/loader.py``'s, like prepared Kinetics clips) as a
two-class ``list`` data set, then trains the I3D-NL5 R50 recipe
(``configs/kinetics400/i3d_nl5_r50_8x8.yaml``: 8x8 clips, decord, 224 px crops made on the
device) for ``--steps`` steps with ``--workers`` loader workers (bf16 and channels_last_3d on
CUDA), and prints the trainer's clips/s and the share of the time spent waiting for data, per
logged window and in total after the first (issue 23's GPU-box plan: run it when a GPU is lent).
``--alone-batches B`` first times B batches of the same train loader with no model: what the
workers deliver when nothing else runs, beside what they deliver while the model trains; with
``--alone-workers 1,4,16`` at each of those worker counts (how the loader scales on the box).
A check that it runs on CPU:
``--workers 1 --steps 10 --batch 2 --videos 8 --alone-batches 2 model.name=i3d_nl_tiny``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from loader import write_video  # the sibling benchmark's videos (its folder is on sys.path)

from nlvideo.config import Config, load_config
from nlvideo.engine.distributed import DistInfo
from nlvideo.pipeline import run_training
from nlvideo.pipeline.data import build_train_loader, run_data

RECIPE = Path(__file__).resolve().parents[1] / "configs/kinetics400/i3d_nl5_r50_8x8.yaml"


def write_dataset(root: Path, count: int, links: int = 1) -> Path:
    """``count`` videos in two classes, each listed under ``links`` names (hard links), and a
    ``path label`` list naming them all.

    The links make an epoch long without writing more videos: the DataLoader starts its workers
    again every epoch, and with 64 videos, batch 8 and 16 workers an epoch was 8 steps, so the
    run measured worker start-ups, not the loader (issue 23's first H200 run).
    """
    lines = []
    for i in range(count):
        label = "a" if i % 2 == 0 else "b"
        path = root / label / f"v{i:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, i)
        lines.append(f"{path} {label}\n")
        for j in range(1, links):
            alias = path.with_name(f"{path.stem}_{j}.mp4")
            os.link(path, alias)
            lines.append(f"{alias} {label}\n")
    listing = root / "list.txt"
    listing.write_text("".join(lines))
    return listing


def loader_alone(cfg: Config, batches: int) -> float:
    """Training clips/s of the recipe's train loader with no model: what the workers deliver
    when nothing else runs. The clock starts after each worker's first batch: those are made
    side by side while the workers start, and would count as instant."""
    info = DistInfo(0, 1, 0, torch.device("cpu"), owns_group=False)
    loader = build_train_loader(cfg, run_data(cfg, info).train, info)
    clips, batches_seen = 0, iter(loader)
    for _ in range(max(1, cfg.data.num_workers)):
        next(batches_seen)
    start = time.perf_counter()
    for _, batch in zip(range(batches), batches_seen, strict=False):
        clips += len(batch.labels)  # a ClipBatch: one label per clip
    return clips / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument(
        "--links", type=int, default=8, help="names per video (an epoch of videos x links)"
    )
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=8, help="clips per step (one device)")
    parser.add_argument(
        "--alone-batches", type=int, default=0, help="first time this many batches, no model"
    )
    parser.add_argument(
        "--alone-workers", default="", help="worker counts, e.g. 1,4,16 (default: --workers)"
    )
    parser.add_argument("overrides", nargs="*", help="more recipe overrides, key=value")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.alone_workers.split(",") if n] or [args.workers]
    epoch = args.videos * max(args.links, 1) // args.batch
    if args.alone_batches and epoch < max(counts) + args.alone_batches:
        parser.error(
            f"--alone-batches {args.alone_batches} after one batch per worker "
            f"({max(counts)}) needs {max(counts) + args.alone_batches} batches, an epoch has "
            f"{epoch}: raise --videos or --links"
        )
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        listing = write_dataset(Path(tmp) / "videos", args.videos, args.links)
        print(
            f"{args.videos} videos 340x256 written in {time.perf_counter() - start:.0f} s, "
            f"each listed {args.links}x: {epoch} steps an epoch"
        )
        out = Path(tmp) / "run"
        overrides = [
            "data.format=list",
            f"data.root={listing.parent}",
            f"data.train_list={listing}",
            f"data.val_list={listing}",
            "model.num_classes=2",
            f"data.num_workers={args.workers}",
            f"train.batch_size={args.batch}",
            f"train.max_steps={args.steps}",
            "train.log_every=5",
            "train.precise_bn_batches=0",
            "train.progress=false",
            f"train.output_dir={out}",
            *(["train.amp=bf16", "train.channels_last=true"] if cuda else []),
            *args.overrides,
        ]
        cfg = load_config(RECIPE, overrides)
        for workers in counts if args.alone_batches else []:
            alone = load_config(cfg, [f"data.num_workers={workers}"])
            rate = loader_alone(alone, args.alone_batches)
            print(
                f"loader alone, {workers} workers: {rate:.1f} clips/s "
                f"({rate / max(workers, 1):.1f} per worker)"
            )
        run_training(cfg)
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    windows = [r for r in records if r["kind"] == "train"]
    if not windows:
        print("no training window was logged (raise --steps)")
        return 1
    device = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"\n{device}, {args.workers} loader workers, batch {args.batch}")
    print(f"{'step':>6} {'clips/s':>9} {'data wait':>10}")
    for r in windows:
        print(f"{r['step']:6d} {r['clips_per_s']:9.1f} {r['data_wait']:10.0%}")
    # Clips per window: its steps since the previous window times the batch.
    starts = [0] + [r["step"] for r in windows[:-1]]
    clips = [(r["step"] - start) * args.batch for r, start in zip(windows, starts, strict=True)]
    steady = windows[1:] or windows  # the first window holds the workers' start
    clips = clips[len(windows) - len(steady) :]
    # Totals, not means of window rates: a burst of ready batches makes a short, fast window.
    seconds = [c / r["clips_per_s"] for c, r in zip(clips, steady, strict=True)]
    waited = sum(s * r["data_wait"] for s, r in zip(seconds, steady, strict=True))
    rate, total = sum(clips) / sum(seconds), sum(seconds)
    print(
        f"after the first window: {rate:.1f} clips/s over {total:.1f} s, {waited / total:.0%} of "
        f"the time waiting for data ({rate / max(args.workers, 1):.1f} clips/s per worker)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
