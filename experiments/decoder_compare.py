"""decord (0.6.0) or decord2 (3.x), whichever `import decord` gives, against PyAV.

Needs only numpy, av and the decord module (no torch, no nlvideo), so that it runs in a venv of
its own: decord2 installs as `decord` and cannot sit beside decord 0.6.0::

    python experiments/decoder_compare.py OUT_DIR [--reads 10000] [--small-videos GLOB]

Reports, for the videos it writes (B-frames, open GOPs, edit list, AVI/MPEG-4, WebM/VP9):
frames identical to PyAV's (index drawn in each frame, and pixels vs PyAV's rgb24 at the same
size with bilinear and bicubic swscale), training clips/s on 340x256 H.264 (CPU time, one
thread), RSS after `--reads` random clip reads in 2 worker processes, and the behaviour on
broken files (each in a subprocess with a timeout, so a hang shows as a hang).
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing as mp
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path

import av
import decord
import numpy as np
from av.video.reformatter import VideoReformatter

N = 60


def index_image(i: int, h: int, w: int) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    for bit in range(8):
        if (i >> bit) & 1:
            r, c = divmod(bit, 4)
            image[r * h // 2 : (r + 1) * h // 2, c * w // 4 : (c + 1) * w // 4] = 255
    return image


def read_index(image: np.ndarray) -> int:
    h, w = image.shape[:2]
    index = 0
    for bit in range(8):
        r, c = divmod(bit, 4)
        y0, y1, x0, x1 = r * h // 2, (r + 1) * h // 2, c * w // 4, (c + 1) * w // 4
        dy, dx = (y1 - y0) // 4, (x1 - x0) // 4
        if image[y0 + dy : y1 - dy, x0 + dx : x1 - dx].mean() > 127:
            index |= 1 << bit
    return index


def write(path, codec="libx264", options=None, gop=None, bframes=None, n=N):
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.options = options or {}
        if gop:
            stream.gop_size = gop
        if bframes is not None:
            stream.codec_context.max_b_frames = bframes
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(index_image(i, 64, 96), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return Path(path)


def trim_edit_list(src: Path, dst: Path, skip_start: int, skip_end: int) -> Path:
    """As tests/conftest.py: frames skip_start .. n - skip_end - 1 presented (30 fps mp4)."""
    data = bytearray(src.read_bytes())
    at = data.find(b"elst")
    duration, media_time = struct.unpack(">II", data[at + 12 : at + 20])
    new_duration = duration - round((skip_start + skip_end) * 1000 / 30)
    data[at + 12 : at + 20] = struct.pack(">II", new_duration, media_time + skip_start * 512)
    dst.write_bytes(bytes(data))
    return dst


def videos(root: Path) -> dict[str, Path]:
    x264 = "crf=10:scenecut=0:keyint=12:min-keyint=12:bframes=3"
    src = write(root / "src.mp4", options={"crf": "10", "bf": "2"}, gop=12)
    return {
        "bframes": write(root / "bframes.mp4", options={"crf": "10", "bf": "3"}, gop=10),
        "open_gop": write(root / "open.mp4", options={"x264-params": x264 + ":open-gop=1"}),
        "edit_list_trim": trim_edit_list(src, root / "trim.mp4", 10, 5),
        "mkv": write(root / "v.mkv", options={"crf": "10"}),
        "avi_mpeg4": write(
            root / "v.avi", codec="mpeg4", options={"qscale": "2"}, gop=10, bframes=2
        ),
        "webm_vp9": write(
            root / "v.webm", codec="libvpx-vp9", gop=20, options={"crf": "10", "b": "0"}
        ),
    }


def pyav_frames(path: Path, interpolation: str) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        reformatter = VideoReformatter()
        return [
            reformatter.reformat(f, format="rgb24", interpolation=interpolation).to_ndarray()
            for f in container.decode(video=0)
        ]


def exactness(root: Path) -> None:
    print(f"\n[exactness] decord {decord.__version__}")
    for name, path in videos(root).items():
        reference = pyav_frames(path, "BILINEAR")
        bicubic = pyav_frames(path, "BICUBIC")
        try:
            vr = decord.VideoReader(str(path), num_threads=1)
            got = vr.get_batch(list(range(len(vr)))).asnumpy()
            scrambled = [50, 3, 3, 20, 44, 0, 33, 34, 59, 1]
            scrambled = [i for i in scrambled if i < len(vr)]
            picked = vr.get_batch(scrambled).asnumpy()
        except Exception as e:
            print(f"  {name:15s} decord error: {type(e).__name__}: {str(e)[:80]}")
            continue
        offset = 10 if name == "edit_list_trim" else 0
        indices_ok = [read_index(f) for f in picked] == [i + offset for i in scrambled]
        same = len(got) == len(reference)
        diff = (
            max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(got, reference, strict=True))
            if same
            else None
        )
        same_bicubic = same and all(np.array_equal(a, b) for a, b in zip(got, bicubic, strict=True))
        print(
            f"  {name:15s} frames {len(got):3d} (PyAV {len(reference):3d}) "
            f"scrambled indices {'ok' if indices_ok else 'WRONG'}  "
            f"pixels == PyAV bilinear: {same and diff == 0} (max diff {diff}), "
            f"== bicubic: {same_bicubic}"
        )


def speed(paths: list[str], seconds: float) -> None:
    rng = np.random.default_rng(0)
    clips, spent = 0, 0.0
    while spent < seconds:
        path = paths[clips % len(paths)]
        start = time.process_time()
        vr = decord.VideoReader(path, num_threads=1, width=340, height=256)
        first = int(rng.integers(0, len(vr) - 57))
        vr.get_batch(list(range(first, first + 64, 8))).asnumpy()
        del vr
        spent += time.process_time() - start
        clips += 1
    print(f"\n[speed] {clips / spent:.2f} training clips/s (8x8, 340x256, CPU time, 1 thread)")


def _rss_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20


def _worker(paths: list[str], reads: int, seed: int, queue) -> None:
    rng = np.random.default_rng(seed)
    before = _rss_mb()
    for i in range(reads):
        vr = decord.VideoReader(paths[int(rng.integers(len(paths)))], num_threads=1)
        n = len(vr)
        start = int(rng.integers(0, max(n - 8, 1)))
        vr.get_batch([min(start + 2 * k, n - 1) for k in range(4)]).asnumpy()
        del vr
        if i == 99:
            before = _rss_mb()  # after warm-up
    queue.put((before, _rss_mb()))


def memory(paths: list[str], reads: int) -> None:
    queue = mp.get_context("fork").Queue()
    procs = [
        mp.get_context("fork").Process(target=_worker, args=(paths, reads // 2, s, queue))
        for s in range(2)
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    text = ", ".join(f"{a:.0f} -> {b:.0f} MB" for a, b in results)
    print(
        f"\n[memory] {reads} random clip reads in 2 workers ({time.perf_counter() - start:.0f}"
        f" s): RSS after 100 reads -> at the end: {text}"
    )


def broken(root: Path) -> None:
    good = write(root / "good.mp4", n=30).read_bytes()
    files = {
        "truncated": root / "truncated.mp4",
        "zero": root / "zero.mp4",
        "text": root / "text.mp4",
        "missing": root / "missing.mp4",
    }
    files["truncated"].write_bytes(good[: len(good) * 7 // 10])
    files["zero"].write_bytes(b"")
    files["text"].write_text("this is not a video\n" * 20)
    print("\n[broken files]")
    code = (
        "import decord,sys; vr=decord.VideoReader(sys.argv[1], num_threads=1); "
        "print(len(vr), vr.get_batch([0,1,2]).asnumpy().shape)"
    )
    for name, path in files.items():
        try:
            out = subprocess.run(
                [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
            )
            last = (out.stderr.strip().splitlines() or [""])[-1][:100]
            result = f"exit {out.returncode}: {out.stdout.strip() or last}"
        except subprocess.TimeoutExpired:
            result = "HANG (> 60 s)"
        print(f"  {name:10s} {result}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--reads", type=int, default=10000)
    parser.add_argument("--speed-videos", default="", help="glob of 340x256 videos")
    parser.add_argument("--small-videos", default="", help="glob of videos for the RSS test")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    decord.logging.set_level(decord.logging.QUIET)
    exactness(args.out)
    broken(args.out)
    if args.speed_videos:
        speed(sorted(glob.glob(args.speed_videos)), args.seconds)
    if args.small_videos and args.reads:
        memory(sorted(glob.glob(args.small_videos)), args.reads)


if __name__ == "__main__":
    main()
