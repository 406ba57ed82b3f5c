"""Prepare Kinetics-400/600/700: official CSVs -> checked lists, optional fast re-encode.

    python datasets/prepare_kinetics.py --root /data/k400/raw \\
        --csv /data/k400/annotations/train.csv --csv /data/k400/annotations/validate.csv \\
        --out /data/k400/lists --reencode /data/k400/256 --short-side 256 --gop 16 --workers 16

Steps:
1. Parse every CSV (class names from the first one unless --classes is given), check which
   clips exist and that each decodes (a video stream, its first and last frame, a positive
   duration; truncated, audio-only and non-video files fail); print one summary per CSV and
   write every problem to `<out>/problems_<csv>.tsv`. `--no-decode-check` skips decoding.
2. Optionally re-encode each found clip with PyAV to H.264 with the short side at 256 (or 320),
   never upscaling, a fixed keyframe interval (`--gop`) so a random window decodes at most
   `gop` frames, no audio. Runs in parallel processes with a progress bar; resumable: a clip
   whose output exists is skipped (outputs are written to `.part` files and renamed, so an
   existing output is always complete); a source video is never overwritten.
3. Write `<out>/<csv stem>.txt` ("relative/path label", relative to the video root used) and
   `<out>/classes.json`, listing only videos that exist (and were re-encoded, if asked).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from tqdm import tqdm

from nlvideo.data.annotations import (
    Problem,
    VideoRecord,
    load_classes,
    load_kinetics_csv,
    save_classes,
    validate_records,
)
from nlvideo.data.sampling import resized_shape
from nlvideo.data.video import open_video

logger = logging.getLogger("prepare_kinetics")


def output_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """Short side to `short_side` (never upscaled), both sides even as yuv420p needs."""
    if min(height, width) > short_side:
        height, width = resized_shape(height, width, short_side)
    return height - height % 2, width - width % 2


def reencode(src: str, dst: str, *, short_side: int, gop: int, crf: int) -> None:
    """Write `src` to `dst` as H.264 (yuv420p, CFR, keyframe every `gop` frames, no audio)."""
    if os.path.realpath(src) == os.path.realpath(dst):
        raise ValueError(f"refusing to overwrite the source video {src}")
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    part = f"{dst}.part"
    with av.open(src) as source:
        video = source.streams.video[0]
        video.codec_context.thread_count = 1
        rate = Fraction(video.average_rate or video.guessed_rate or 30)
        height, width = output_size(
            video.codec_context.height, video.codec_context.width, short_side
        )
        with av.open(part, "w", format="mp4") as target:
            stream = target.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.thread_count = 1
            stream.options = {
                "crf": str(crf),
                "preset": "fast",
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
            }
            rotated = False
            reformatter = VideoReformatter()  # one swscale context per video, not per frame
            for index, frame in enumerate(source.decode(video)):
                if not rotated and frame.rotation:
                    stream.set_display_rotation(frame.rotation)
                rotated = True
                out = reformatter.reformat(
                    frame, width=width, height=height, format="yuv420p", interpolation="BICUBIC"
                )
                out.pts, out.time_base = index, 1 / rate  # constant frame rate
                target.mux(stream.encode(out))
            target.mux(stream.encode())
    os.replace(part, dst)


def _job(args: tuple[str, str, int, int, int]) -> tuple[str, str | None]:
    src, dst, short_side, gop, crf = args
    try:
        reencode(src, dst, short_side=short_side, gop=gop, crf=crf)
        return src, None
    except Exception as e:  # one bad video must not stop the others
        Path(f"{dst}.part").unlink(missing_ok=True)
        return src, f"{type(e).__name__}: {e}"


def check_video(path: str) -> tuple[str, str | None]:
    """(path, None) when the video decodes: a video stream, first and last frame, duration > 0.

    Otherwise the reason, e.g. "no video stream" or "cannot decode (...)".
    """
    try:
        with open_video(path, backend="decord", allow_sequential=False) as reader:
            n, fps = reader.num_frames, reader.fps
            if n < 1 or not fps or fps <= 0:
                return path, f"no frames or no frame rate ({n} frames, {fps} fps)"
            reader.read(np.array([0, n - 1]))
    except Exception as e:  # any reader/decoder error is a reason, not a crash
        return path, str(getattr(e, "reason", None) or f"{type(e).__name__}: {e}")
    return path, None


def check_all(records: Sequence[VideoRecord], workers: int) -> list[Problem]:
    """Decode check of every record, in parallel; one `undecodable` problem per bad video."""
    paths = sorted({r.path for r in records})
    if workers > 1 and len(paths) > 1:
        with get_context("spawn").Pool(workers) as pool:
            results = list(
                tqdm(
                    pool.imap_unordered(check_video, paths, chunksize=8),
                    total=len(paths),
                    desc="decode check",
                )
            )
    else:
        results = [check_video(p) for p in paths]
    return [Problem("undecodable", p, reason) for p, reason in sorted(results) if reason]


def target_path(record: VideoRecord, root: Path, out_root: Path) -> Path:
    """Mirror the source layout under `out_root`, always as .mp4."""
    return (out_root / Path(record.path).relative_to(root)).with_suffix(".mp4")


def reencode_all(
    records: Sequence[VideoRecord],
    *,
    root: Path,
    out_root: Path,
    short_side: int,
    gop: int,
    crf: int,
    workers: int,
) -> tuple[list[VideoRecord], list[Problem]]:
    """Re-encode in parallel, skipping finished outputs; returns records of the outputs."""
    if out_root.resolve() == root.resolve():
        raise ValueError(
            f"--reencode must differ from --root ({root}): sources are never overwritten"
        )
    targets = {r.path: target_path(r, root, out_root) for r in records}
    todo = [
        (r.path, str(targets[r.path]), short_side, gop, crf)
        for r in records
        if not targets[r.path].exists()
    ]
    print(f"re-encoding {len(todo):,} videos ({len(records) - len(todo):,} already done)")
    if workers > 1 and len(todo) > 1:
        with get_context().Pool(workers) as pool:
            results = list(tqdm(pool.imap_unordered(_job, todo, chunksize=4), total=len(todo)))
    else:
        results = [_job(job) for job in tqdm(todo)]
    failed = {src: error for src, error in results if error is not None}
    problems = [Problem("reencode_failed", src, error) for src, error in failed.items()]
    done = [
        VideoRecord(str(targets[r.path]), r.label, r.video_id)
        for r in records
        if r.path not in failed
    ]
    return done, problems


def write_list(records: Sequence[VideoRecord], root: Path, path: Path) -> None:
    """PySlowFast-style list: `relative/path label`, relative to `root`."""
    lines = [f"{Path(r.path).relative_to(root)} {r.label}" for r in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, required=True, help="raw videos (<split>/<label>/ or <split>/)"
    )
    parser.add_argument(
        "--csv", type=Path, action="append", required=True, help="official CSV; repeatable"
    )
    parser.add_argument("--out", type=Path, required=True, help="where lists and reports go")
    parser.add_argument(
        "--classes", type=Path, help="class file (default: labels of the first CSV)"
    )
    parser.add_argument("--reencode", type=Path, help="re-encode into this directory")
    parser.add_argument("--short-side", type=int, default=256, help="256 or 320")
    parser.add_argument(
        "--gop", type=int, default=16, help="keyframe interval of re-encoded videos"
    )
    parser.add_argument("--crf", type=int, default=23, help="x264 quality (lower = better, larger)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--no-decode-check", action="store_true", help="only check that the files exist"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    args.out.mkdir(parents=True, exist_ok=True)
    classes = load_classes(args.classes) if args.classes else None
    for csv_path in args.csv:
        problems: list[Problem] = []
        records, classes = load_kinetics_csv(
            csv_path, root=args.root, classes=classes, problems=problems
        )
        report = validate_records(records, problems=problems)
        if not args.no_decode_check:
            present = [r for r in records if r.path not in report.bad_paths()]
            report.problems.extend(check_all(present, args.workers))
        bad, found = report.bad_paths(), []
        for record in records:  # existing files, first occurrence of each
            if record.path not in bad:
                found.append(record)
                bad.add(record.path)
        video_root = args.root
        if args.reencode is not None:
            found, failures = reencode_all(
                found,
                root=args.root,
                out_root=args.reencode,
                short_side=args.short_side,
                gop=args.gop,
                crf=args.crf,
                workers=args.workers,
            )
            report.problems.extend(failures)
            video_root = args.reencode
        report.write(args.out / f"problems_{csv_path.stem}.tsv")
        write_list(found, video_root, args.out / f"{csv_path.stem}.txt")
        print(
            f"{csv_path.name}: {report.summary()}; {len(found):,} videos listed in "
            f"{args.out / (csv_path.stem + '.txt')}"
        )
    save_classes(classes, args.out / "classes.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
