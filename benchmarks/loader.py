"""Loader throughput, ours vs pytorchvideo, side by side on the same generated videos.

    python benchmarks/loader.py [--videos 12] [--seconds 15] [--gop 250]

Writes H.264 videos like prepared Kinetics clips (340x256, 10 s, 30 fps, textured motion,
x264 defaults: keyframe every `--gop` frames, B-frames) into a temp dir, then measures in this
one process:

* per worker process (no DataLoader workers, pinned to one CPU core so that no decoder gets
  extra threads): training clips/s for an 8x8 clip, and test videos/s for 10 clips of 8x8;
  ours with decord and with PyAV vs `pytorchvideo.data.LabeledVideoDataset` with its decord
  decoder and its `random` / `constant_clips_per_video` clip samplers;
* end to end: DataLoader training clips/s (8 videos a batch) with 1 and 2 workers: what
  one loader core gives a GPU box (README, GPU-box plan).
* the decode limit, on the same files in the same interleaved rounds: PyAV's sequential decode
  rate (one thread, frames not converted) divided by the frames a clip forces the decoder
  through (from the keyframe before the window to its last frame; for the test views, that
  summed over the runs a keyframe separates), averaged over the windows the samplers draw.
  Every loader's clips/s is printed as its share of that limit. Ours can pass 100%: it skips
  the non-reference frames that no kept frame needs.

Both sides decode the same windows and return uint8/float clips of 8 frames; pytorchvideo
keeps every frame of its 64-frame window, so 8 are picked afterwards, as its recipes do.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import DataLoader

from nlvideo.data import VideoClipDataset, VideoRecord, build_loader, probe
from nlvideo.data.sampling import uniform_clip_indices, window_indices
from nlvideo.data.video import open_video

NUM_FRAMES, STRIDE, TEST_CLIPS, FPS = 8, 8, 10, 30


def write_video(path: Path, seed: int, *, seconds: int = 10, gop: int = 250) -> None:
    """340x256 H.264 clip of a drifting random texture (bitrate close to Kinetics clips)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    texture = np.kron(small, np.ones((8, 8, 1), dtype=np.uint8))  # (512, 640, 3) blocks
    texture = (texture.astype(np.float32) * 0.5 + np.roll(texture, 4, axis=0) * 0.5).astype(
        np.uint8
    )
    dy, dx = rng.integers(1, 4, size=2)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 340, 256, "yuv420p"
        stream.gop_size = gop
        stream.options = {"crf": "23", "preset": "veryfast"}
        for i in range(seconds * FPS):
            y, x = (i * dy) % 250, (i * dx) % 290
            image = texture[y : y + 256, x : x + 340].copy()
            image[:, :, i % 3] += rng.integers(0, 8, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def interleaved_rates(
    steps: dict[str, Callable[[int], object]], budget_s: float, rounds: int = 3
) -> dict[str, float]:
    """Items per second of each `step(i)`, measured in alternating rounds of budget/rounds
    seconds each, so a change in machine load affects all methods alike."""
    for step in steps.values():
        step(0)  # warm-up: imports, first open
    items = dict.fromkeys(steps, 0)
    seconds = dict.fromkeys(steps, 0.0)
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            while items[name] == 0 or time.perf_counter() - start < budget_s / rounds:
                items[name] += 1
                step(items[name])
            seconds[name] += time.perf_counter() - start
    return {name: items[name] / seconds[name] for name in steps}


def cycle(dataset) -> Iterator:
    """Iterate a dataset or loader forever (they stop after one pass)."""
    while True:
        yield from dataset


def subsample(sample: dict) -> dict:
    """pytorchvideo clips hold the whole 64-frame window: keep 8 frames, as its recipes do."""
    video = sample["video"]
    index = torch.linspace(0, video.shape[1] - 1, NUM_FRAMES).long()
    return {**sample, "video": video[:, index]}


def pytorchvideo_dataset(paths: list[Path], mode: str):
    from pytorchvideo.data import LabeledVideoDataset, make_clip_sampler

    duration = NUM_FRAMES * STRIDE / FPS
    if mode == "train":
        sampler, video_sampler = (
            make_clip_sampler("random", duration),
            torch.utils.data.RandomSampler,
        )
    else:
        sampler = make_clip_sampler("constant_clips_per_video", duration, TEST_CLIPS)
        video_sampler = torch.utils.data.SequentialSampler
    return LabeledVideoDataset(
        [(str(p), {"label": 0}) for p in paths],
        clip_sampler=sampler,
        video_sampler=video_sampler,
        transform=subsample,
        decode_audio=False,
        decoder="decord",
    )


def ours(records: list[VideoRecord], mode: str, backend: str) -> VideoClipDataset:
    return VideoClipDataset(
        records, mode=mode, num_frames=NUM_FRAMES, stride=STRIDE, num_clips=TEST_CLIPS,
        short_side=256, backend=backend,
    )  # fmt: skip


def forced_frames(indices: list[int], keyframes: tuple[int, ...]) -> int:
    """Frames a decoder goes through for sorted `indices`: from the keyframe before each run
    to the run's last frame, a new run wherever a keyframe lies after the previous index."""
    keys = np.asarray(keyframes)
    total, start, previous = 0, None, None
    for index in indices:
        key = int(keys[keys <= index].max())
        if start is None or key > previous:
            if start is not None:
                total += previous - start + 1
            start = key
        previous = index
    return total + previous - start + 1


def mean_forced_frames(paths: list[Path]) -> tuple[float, float]:
    """Mean frames forced per training clip (over every start) and per test video."""
    train, test = [], []
    for path in paths:
        info = probe(path)
        n, keys = info.num_frames, info.keyframes
        last_start = n - (NUM_FRAMES - 1) * STRIDE - 1
        train += [
            forced_frames(np.unique(window_indices(s, STRIDE, NUM_FRAMES, n)).tolist(), keys)
            for s in range(last_start + 1)
        ]
        views = uniform_clip_indices(n, num_frames=NUM_FRAMES, stride=STRIDE, num_clips=TEST_CLIPS)
        test.append(forced_frames(np.unique(views).tolist(), keys))
    return float(np.mean(train)), float(np.mean(test))


def decode_all(path: Path) -> int:
    """Sequential decode of every frame, one thread, no conversion: the decoder's own rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        return sum(1 for _ in container.decode(stream))


def per_process(paths: list[Path], budget: float) -> dict[str, float]:
    records = [VideoRecord(str(p), 0, p.stem) for p in paths]
    n = len(records)
    frames = [probe(p).num_frames for p in paths]
    steps: dict[str, Callable[[int], object]] = {
        "decode sequential": lambda i: decode_all(paths[i % n])
    }
    rng = np.random.default_rng(0)

    def decord_only(i: int) -> None:  # decord itself on the same windows, no PyAV path
        start = int(rng.integers(0, frames[i % n] - (NUM_FRAMES - 1) * STRIDE))
        window = window_indices(start, STRIDE, NUM_FRAMES, frames[i % n])
        with open_video(paths[i % n], backend="decord", short_side=256,
                        allow_sequential=False) as reader:  # fmt: skip
            reader.read(window)

    steps["train decord alone"] = decord_only
    for mode in ("train", "test"):
        for backend in ("decord", "pyav"):
            dataset = ours(records, mode, backend)
            steps[f"{mode} ours/{backend}"] = lambda i, d=dataset: d[i % n]
    train_pv = cycle(pytorchvideo_dataset(paths, "train"))
    steps["train pytorchvideo/decord"] = lambda i: next(train_pv)
    test_pv = cycle(pytorchvideo_dataset(paths, "test"))

    def one_video(_: int) -> None:
        for _clip in range(TEST_CLIPS):
            next(test_pv)

    steps["test pytorchvideo/decord"] = one_video
    rates = interleaved_rates(steps, budget)
    rates["decode sequential"] *= float(np.mean(frames))  # files/s -> frames/s
    return rates


def end_to_end(
    paths: list[Path], budget: float, workers: tuple[int, ...] = (1, 2), batch: int = 8
) -> dict[tuple[str, int], float]:
    """Training clips/s through a DataLoader, ours vs pytorchvideo, per worker count."""
    records = [VideoRecord(str(p), 0, p.stem) for p in paths] * 4
    rates = {}
    for n in workers:
        loaders = {
            "ours/decord": build_loader(
                ours(records, "train", "decord"),
                batch_size=batch,
                num_workers=n,
                shuffle=True,
                drop_last=True,
                pin_memory=False,
            ),
            "pytorchvideo/decord": DataLoader(
                pytorchvideo_dataset(paths * 4, "train"), batch_size=batch, num_workers=n
            ),
        }
        batches, seconds = dict.fromkeys(loaders, 0), dict.fromkeys(loaders, 0.0)
        # Order A B B A, fresh workers each time (started before timing), against load drift.
        for name in [*loaders, *reversed(loaders)]:
            it = cycle(loaders[name])
            next(it)  # workers started and warm
            start = time.perf_counter()
            while time.perf_counter() - start < budget / 2:
                next(it)
                batches[name] += 1
            seconds[name] += time.perf_counter() - start
            del it  # shuts the workers down
        rates |= {(name, n): batch * batches[name] / seconds[name] for name in loaders}
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=15.0, help="time per measurement")
    parser.add_argument("--gop", type=int, default=250, help="keyframe interval of the videos")
    parser.add_argument("--skip-loader", action="store_true", help="per-process rates only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"v{i:02d}.mp4" for i in range(args.videos)]
        start = time.perf_counter()
        for i, path in enumerate(paths):
            write_video(path, i, gop=args.gop)
        mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
        print(f"{len(paths)} videos 340x256, 10 s, 30 fps, GOP {args.gop}, {mb:.2f} MB each "
              f"(written in {time.perf_counter() - start:.0f} s)")  # fmt: skip

        train_forced, test_forced = mean_forced_frames(paths)
        cores = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cores)})
        try:
            single = per_process(paths, args.seconds)
        finally:
            os.sched_setaffinity(0, cores)
        loader = end_to_end(paths, args.seconds) if not args.skip_loader else None

    rate = single.pop("decode sequential")
    limits = {"train": rate / train_forced, "test": rate / test_forced}
    print(f"\nper worker process (1 core, num_workers=0); load average {os.getloadavg()[0]:.1f}")
    print(f"  sequential decode (PyAV, 1 thread)  {rate:8.1f} frames/s")
    print(f"  frames forced per training clip {train_forced:6.1f}, per test video "
          f"{test_forced:6.1f}")  # fmt: skip
    print(f"  decode limit: {limits['train']:.2f} train clips/s, {limits['test']:.2f} test "
          "videos/s")  # fmt: skip
    for key, value in single.items():
        mode = key.split()[0]
        unit = "clips/s" if mode == "train" else "videos/s"
        share = value / limits[mode]
        print(f"  {key:28s} {value:8.2f} {unit:8s} {share:6.0%} of the decode limit")
    for mode, target in (("train", 1.3), ("test", 5.0)):
        base = single[f"{mode} pytorchvideo/decord"]
        for backend in ("decord", "pyav"):
            ratio = single[f"{mode} ours/{backend}"] / base
            print(f"  {mode} ours/{backend} vs pytorchvideo: {ratio:5.2f}x (target >= {target}x)")
    if loader is None:
        return
    print(f"\nend to end, DataLoader batches of 8 ({len(cores)} cores): training clips/s")
    for workers in sorted({n for _, n in loader}):
        mine, peer = loader["ours/decord", workers], loader["pytorchvideo/decord", workers]
        print(
            f"  {workers} worker(s): ours/decord {mine:6.2f} ({mine / workers:5.2f} per worker), "
            f"pytorchvideo/decord {peer:6.2f}; ours vs pytorchvideo {mine / peer:5.2f}x"
        )


if __name__ == "__main__":
    main()
