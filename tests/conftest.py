"""Shared fixtures: small H.264 videos whose frames carry their own index.

Each frame shows its index as an 8-bit code of big black/white blocks (4 columns x 2 rows),
which survives H.264 at a high quality and any resize down to ~16 pixels, so a test can tell
exactly which frames were decoded: `frame_index(image)`.

Reusable from any test file: the functions below (`from conftest import make_video`) and the
fixtures `video_factory` (writes into the test's tmp dir) and `sample_videos` / `broken_files`
(written once per session).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from nlvideo.data.annotations import VideoRecord
from nlvideo.data.dataset import VideoClipDataset

BROKEN = ["missing", "zero", "truncated", "text", "audio_only"]  # keys of ``broken_files``

CODE_ROWS, CODE_COLS = 2, 4  # 8 bits: indices 0..255


def index_image(index: int, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 frame whose blocks spell `index` in binary (bit b at row b // 4)."""
    image = np.zeros((height, width, 3), np.uint8)
    for bit in range(CODE_ROWS * CODE_COLS):
        if (index >> bit) & 1:
            r, c = divmod(bit, CODE_COLS)
            y0, y1 = r * height // CODE_ROWS, (r + 1) * height // CODE_ROWS
            x0, x1 = c * width // CODE_COLS, (c + 1) * width // CODE_COLS
            image[y0:y1, x0:x1] = 255
    return image


def frame_index(image: np.ndarray) -> int:
    """Read back the index drawn by `index_image` from an (H, W, 3) or (3, H, W) frame."""
    image = np.asarray(image)
    if image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    height, width = image.shape[:2]
    index = 0
    for bit in range(CODE_ROWS * CODE_COLS):
        r, c = divmod(bit, CODE_COLS)
        y0, y1 = r * height // CODE_ROWS, (r + 1) * height // CODE_ROWS
        x0, x1 = c * width // CODE_COLS, (c + 1) * width // CODE_COLS
        dy, dx = (y1 - y0) // 4, (x1 - x0) // 4  # read the block's centre only
        if image[y0 + dy : y1 - dy, x0 + dx : x1 - dx].mean() > 127:
            index |= 1 << bit
    return index


def clip_indices(clip: np.ndarray) -> list[int]:
    """Frame indices of a (3, T, H, W) uint8 clip."""
    clip = np.asarray(clip)
    return [frame_index(clip[:, t]) for t in range(clip.shape[1])]


_CODEC_OPTIONS = {
    "mpeg4": {"qscale": "2"},  # MPEG-4 Part 2 / Xvid-like, near-lossless quantiser
    "libvpx-vp9": {"crf": "10", "b": "0", "deadline": "realtime", "cpu-used": "8"},
}


def make_video(
    path: str | Path,
    num_frames: int,
    size: tuple[int, int] = (96, 64),
    fps: int = 30,
    *,
    gop: int | None = None,
    bframes: int | None = None,
    faststart: bool = False,
    rotation: int | None = None,
    frame_fn: Callable[[int, int, int], np.ndarray] = index_image,
    codec: str = "libx264",
) -> Path:
    """Write an H.264 (yuv420p, crf 10) video; frame i is `frame_fn(i, height, width)`.

    ``codec="mpeg4"`` writes MPEG-4 Part 2 (as in UCF101/HMDB51 AVIs, ``.avi``) and
    ``codec="libvpx-vp9"`` VP9 (as in Something-Something v2, ``.webm``), both high quality.

    Args:
        path: Output file (.mp4, .mkv, ...).
        num_frames: Frames to write.
        size: (width, height), both even.
        fps: Frame rate.
        gop: Keyframe interval (PyAV default 12).
        bframes: Max consecutive B-frames (x264 default 3).
        faststart: Put the index (moov) before the data, as streaming files do.
        rotation: Display rotation in degrees stored in the container.
        frame_fn: Draws frame i; default draws its index.
    """
    path = Path(path)
    width, height = size
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        codec_options = _CODEC_OPTIONS.get(codec, {"crf": "10"})
        if bframes is not None:
            codec_options["bf"] = str(bframes)
        stream.options = codec_options
        if gop is not None:
            stream.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_fn(i, height, width), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def make_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    """Write an AAC-only .mp4 (no video stream)."""
    rate = 16000
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        t = np.arange(int(rate * seconds)) / rate
        samples = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for start in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, start : start + 1024]), format="fltp", layout="mono"
            )
            frame.sample_rate = rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return Path(path)


def trim_edit_list(src: str | Path, dst: str | Path, skip_start: int, skip_end: int = 0) -> Path:
    """Copy an MP4 from `make_video` (30 fps) with its edit list trimmed, as stream-copy cuts do.

    The first `skip_start` and last `skip_end` frames stay in the file but are marked to be
    discarded, so only frames skip_start .. num_frames - skip_end - 1 are presented.
    """
    data = bytearray(Path(src).read_bytes())
    at = data.find(b"elst")
    assert at > 0 and data[at + 4] == 0, "expected a version-0 edit list"
    duration, media_time = struct.unpack(">II", data[at + 12 : at + 20])
    movie_ms_per_frame, media_ticks_per_frame = 1000 / 30, 512  # mvhd 1000 Hz, mdhd 15360 Hz
    new_duration = duration - round((skip_start + skip_end) * movie_ms_per_frame)
    new_media_time = media_time + skip_start * media_ticks_per_frame
    data[at + 12 : at + 20] = struct.pack(">II", new_duration, new_media_time)
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


@pytest.fixture
def video_factory(tmp_path: Path) -> Callable[..., Path]:
    """`video_factory(name, num_frames, size=(96, 64), fps=30, **kw)` writes into tmp_path."""

    def factory(name: str, num_frames: int, size=(96, 64), fps: int = 30, **kw) -> Path:
        return make_video(tmp_path / name, num_frames, size, fps, **kw)

    return factory


@pytest.fixture(scope="session")
def sample_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Good videos, written once: 60/45 frames, 1 frame, 5 frames, portrait, B-frames, mkv."""
    root = tmp_path_factory.mktemp("videos")
    return {
        "v60": make_video(root / "v60.mp4", 60),
        "v45": make_video(root / "v45.mp4", 45, (64, 48), fps=15),
        "one": make_video(root / "one.mp4", 1),
        "five": make_video(root / "five.mp4", 5),
        "portrait": make_video(root / "portrait.mp4", 40, (64, 96)),
        "bframes": make_video(root / "bframes.mp4", 60, gop=10, bframes=3),
        "mkv": make_video(root / "v50.mkv", 50),
    }


@pytest.fixture(scope="session")
def broken_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One file per way a video can be broken; "missing" does not exist."""
    root = tmp_path_factory.mktemp("broken")
    good = make_video(root / "good.mp4", 30, faststart=True).read_bytes()
    (root / "truncated.mp4").write_bytes(good[: len(good) * 7 // 10])  # header + some frames
    (root / "zero.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is not a video\n" * 20)
    return {
        "missing": root / "missing.mp4",
        "zero": root / "zero.mp4",
        "truncated": root / "truncated.mp4",
        "text": root / "text.mp4",
        "audio_only": make_audio_only(root / "audio_only.mp4"),
    }


def dataset(paths, mode="train", **kw) -> VideoClipDataset:
    """A small dataset of ``paths`` (labels = positions), 4 frames at stride 3."""
    records = [VideoRecord(str(p), i, f"v{i}") for i, p in enumerate(paths)]
    kw = {"num_frames": 4, "stride": 3, "short_side": None, "num_clips": 3} | kw
    return VideoClipDataset(records, mode=mode, **kw)


def write_checkpoint(path: str | Path, classes: list[str], overrides: list[str]) -> Path:
    """A c2d_tiny checkpoint in the contract format, its config = defaults + ``overrides``."""
    import torch

    from nlvideo.config import config_to_dict, load_config
    from nlvideo.engine.checkpoint import save_checkpoint
    from nlvideo.models import build_model
    from nlvideo.models.pretrained import FORMAT

    cfg = load_config(None, ["model.name=c2d_tiny", *overrides])
    torch.manual_seed(0)
    model = build_model("c2d_tiny", num_classes=len(classes))
    state = {
        "format": FORMAT,
        "model": model.state_dict(),
        "model_name": "c2d_tiny",
        "model_kwargs": {"num_classes": len(classes)},
        "classes": list(classes),
        "config": config_to_dict(cfg),
        "epoch": 1,
        "step": 1,
        "optimizer": {},
        "scheduler": {},
        "scaler": {},
        "rng": [],
        "sampler": {},
        "best_metric": 0.0,
    }
    save_checkpoint(path, state)
    return Path(path)


# Test-time settings of the tiny checkpoints (4 frames at stride 2, 32-pixel views).
TINY_TEST_VIEWS = [
    "data.num_frames=4",
    "data.stride=2",
    "data.short_side=32",
    "data.train_scale=[32,40]",
    "data.crop_size=32",
    "data.test_scale=32",
    "data.num_crops=1",
]


TINY_DATA = {"num_train": 8, "num_val": 8, "size": 32, "min_frames": 8, "max_frames": 12}


@pytest.fixture(scope="session")
def tiny_builtin(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, list[str]]:
    """A tiny generated built-in data set and the overrides of a config that uses it."""
    from nlvideo.builtin import generate_builtin_dataset

    cache = tmp_path_factory.mktemp("tiny") / "data"
    data = generate_builtin_dataset(cache, **TINY_DATA)
    overrides = [
        *TINY_TEST_VIEWS,
        "data.num_clips=3",
        "train.device=cpu",
        f"synthetic.root={cache}",
        *[f"synthetic.{k}={v}" for k, v in TINY_DATA.items()],
    ]
    return data, overrides
