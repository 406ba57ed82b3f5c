"""The built-in data set: generated motion clips written as real H.264 files with Kinetics lists.

The clips (``nlvideo.builtin.render``) are written as mp4 files with PyAV, with "path label"
lists in the Kinetics format and a classes.json, so they go through the same loader as real
data. Generation is deterministic per seed and parallel. Each parameter set has its own
folder under the cache root (``parameter_folder``): a short run with other parameters
never regenerates or overwrites the default set, and its ``manifest.json`` records them.

Train without horizontal flips (``data.flip=false``): a mirrored move_left clip is a
move_right clip, and a mirrored clockwise rotation an anticlockwise one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from nlvideo.builtin import same_shape
from nlvideo.builtin.render import CLASSES, render_clip

logger = logging.getLogger(__name__)

# synthetic.task -> its class names. A clip's class (``class_of``) is classes[index % len],
# except in shape_names: the two shapes of the same_shape clip it renders.
TASK_CLASSES: dict[str, tuple[str, ...]] = {
    "motion": CLASSES,
    "same_shape": same_shape.CLASSES,
    "same_colour": same_shape.CLASSES,
    "shape_names": same_shape.PAIR_NAMES,
}
# The two-object tasks -> what their clips compare (``same_shape.render_same_shape_clip``).
PAIR_TASKS: dict[str, str] = {
    "same_shape": "shape",
    "same_colour": "colour",
    "shape_names": "shape",
}

GENERATOR_VERSION = 7  # bump whenever the rendered pixels or encoded bytes change (sets regenerate)


@dataclass(frozen=True)
class SyntheticParams:
    """Everything that determines the generated files (stored in manifest.json)."""

    num_train: int
    num_val: int
    seed: int
    size: int
    min_frames: int
    max_frames: int
    fps: int
    crf: int
    gop: int
    task: str = "motion"  # a key of TASK_CLASSES
    min_distance: float = 32.0  # same_shape/colour: px between the shapes' centres, at least ...
    max_distance: float | None = None  # ... and at most (None: no bound, 0: the same place)
    version: int = GENERATOR_VERSION


@dataclass(frozen=True)
class BuiltinDataset:
    """Paths of a generated built-in data set (lists use paths relative to ``root``)."""

    root: Path
    train_list: Path
    val_list: Path
    classes_file: Path
    classes: list[str]


def parameter_folder(params: SyntheticParams) -> str:
    """Folder name of one parameter set: readable, plus a digest of every parameter.

    E.g. ``motion_960+160_seed0_64px_16-24f_3f9a1c2e``.
    """
    digest = hashlib.sha256(json.dumps(asdict(params), sort_keys=True).encode()).hexdigest()
    p = params
    return (
        f"{p.task}_{p.num_train}+{p.num_val}_seed{p.seed}_{p.size}px_"
        f"{p.min_frames}-{p.max_frames}f_{digest[:8]}"
    )


def _clip_rng(seed: int, split: int, index: int) -> np.random.Generator:
    """An independent generator per clip, so clips can be made in any order or process."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(split, index)))


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> yuv420p planes stacked as (H * 3 / 2, W), BT.601 limited range.

    Integer arithmetic only, so the encoder's input is the same bit for bit on any machine;
    chroma is the rounded mean of each 2x2 block.
    """
    h, w, _ = frame.shape
    rgb = frame.astype(np.int32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    # 2x2 sums (H/2, W/2) first: chroma = ((coefficients . sum) / 4 + 128) / 256 + 128
    sums = rgb.reshape(h // 2, 2, w // 2, 2, 3).sum(axis=(1, 3))  # (H, W, 3) -> (H/2, W/2, 3)
    rs, gs, bs = sums[..., 0], sums[..., 1], sums[..., 2]
    u = ((-38 * rs - 74 * gs + 112 * bs + 512) >> 10) + 128
    v = ((112 * rs - 94 * gs - 18 * bs + 512) >> 10) + 128
    planes = np.concatenate([y.ravel(), u.ravel(), v.ravel()])  # the layout of from_ndarray
    return planes.clip(0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def write_mp4(
    path: str | Path, frames: np.ndarray, *, fps: int = 25, crf: int = 18, gop: int = 12
) -> None:
    """Encode uint8 RGB frames (T, H, W, 3) as H.264 (yuv420p) mp4, byte-identical per input.

    The colour conversion is ours (``rgb_to_yuv420p``), not swscale's: the implicit conversion
    inside ``stream.encode`` gave different bytes for the same frames now and then. Timestamps
    are set explicitly and x264 runs on one thread, so the file depends only on the pixels
    and the arguments (and the libx264 build that PyAV bundles). The macroblock-tree rate
    control is off (``mbtree=0``): with it, the bundled x264 gave another file for the same
    frames about once in 15 encodes of some clips (uninitialised state, more often under
    memory pressure); without it, 0 of 32 clips x 15 encodes differed.
    """
    _, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 yuv420p needs even frame sizes, got {w}x{h} for {path}")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(
            "libx264",
            rate=fps,
            options={
                "crf": str(crf),
                "preset": "veryfast",
                "g": str(gop),
                "threads": "1",
                "x264-params": "mbtree=0",
            },
        )
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        time_base = Fraction(1, fps)
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
            picture.pts, picture.time_base = index, time_base
            container.mux(stream.encode(picture))
        container.mux(stream.encode())


# --------------------------------------------------------------------------- data set


_SPLITS = ("train", "val")


def class_of(task: str, index: int) -> str:
    """The class of clip ``index`` of ``task`` (known before the clip is rendered)."""
    if task == "shape_names":
        return same_shape.pair_name(index)
    classes = TASK_CLASSES[task]
    return classes[index % len(classes)]


def _clip_jobs(params: SyntheticParams) -> list[tuple[str, int, str]]:
    """(split, index, relative path) of every clip, in a folder named by its class."""
    jobs = []
    for split, count in zip(_SPLITS, (params.num_train, params.num_val), strict=True):
        for i in range(count):
            jobs.append((split, i, f"{split}/{class_of(params.task, i)}/{split}_{i:05d}.mp4"))
    return jobs


def render_dataset_clip(
    params: SyntheticParams, split: str, index: int
) -> tuple[str, np.ndarray, np.ndarray | same_shape.SameShapeClip]:
    """Class name, frames and ground truth of clip ``index`` of ``split`` ("train"/"val").

    The ground truth is the object coverage (T, H, W) for the motion task, a
    ``SameShapeClip`` for the same_shape, same_colour and shape_names tasks.
    """
    rng = _clip_rng(params.seed, _SPLITS.index(split), index)
    num_frames = int(rng.integers(params.min_frames, params.max_frames + 1))
    class_name = class_of(params.task, index)
    if params.task in PAIR_TASKS:
        frames, truth = same_shape.render_same_shape_clip(
            index,
            rng,
            size=params.size,
            num_frames=num_frames,
            min_distance=params.min_distance,
            max_distance=params.max_distance,
            compare=PAIR_TASKS[params.task],
        )
        return class_name, frames, truth
    frames, alpha = render_clip(class_name, rng, size=params.size, num_frames=num_frames)
    return class_name, frames, alpha


def _make_clip(args: tuple[Path, SyntheticParams, str, int, str]) -> None:
    root, params, split, index, rel = args
    _, frames, _ = render_dataset_clip(params, split, index)
    write_mp4(root / rel, frames, fps=params.fps, crf=params.crf, gop=params.gop)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Exclusive lock on the data set folder (several processes may ask for it at once)."""
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _result(root: Path, classes: tuple[str, ...]) -> BuiltinDataset:
    return BuiltinDataset(
        root=root,
        train_list=root / "train.txt",
        val_list=root / "val.txt",
        classes_file=root / "classes.json",
        classes=list(classes),
    )


def _is_cached(root: Path, params: SyntheticParams) -> bool:
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("params") != asdict(params):
        return False
    return all((root / name).is_file() for name in manifest.get("files", []))


def generate_builtin_dataset(
    root: str | Path,
    *,
    num_train: int = 960,
    num_val: int = 160,
    seed: int = 0,
    size: int = 64,
    min_frames: int = 16,
    max_frames: int = 24,
    fps: int = 25,
    crf: int = 18,
    gop: int = 12,
    task: str = "motion",
    min_distance: float = 32.0,
    max_distance: float | None = None,
    workers: int | None = None,
) -> BuiltinDataset:
    """Generate the built-in data set in ``root/<parameter_folder>``, or reuse it.

    Each parameter set has its own folder, so nothing is regenerated in place when the
    parameters change. A folder is reused when its ``manifest.json`` holds the same
    parameters and all its files exist; otherwise (an interrupted run: the manifest is
    written last) that folder alone is generated again.

    Args:
        root: Cache root (created); the data set goes into a sub-folder of it.
        num_train: Number of training clips (balanced over the 8 classes).
        num_val: Number of validation clips.
        seed: Seed; the same seed gives the same decoded frames.
        size: Frame width and height in pixels (even).
        min_frames: Shortest clip, in frames.
        max_frames: Longest clip, in frames.
        fps: Frame rate written in the files.
        crf: x264 constant rate factor (lower is higher quality).
        gop: Keyframe interval in frames.
        task: "motion" (8 time-reversed motion classes, ``nlvideo.builtin.render``),
            "same_shape" / "same_colour" (same shape / colour at the start and the end?,
            ``nlvideo.builtin.same_shape``) or "shape_names" (same_shape's clips, labelled
            with their two shapes: 9 classes).
        min_distance: same_shape/colour: least distance in pixels between the shapes' centres.
        max_distance: same_shape/colour: largest distance (None: no bound; 0: S2 where S1 was, the
            near control).
        workers: Processes used to render and encode (default: up to the CPU count).

    Returns:
        The list, class-index paths and class names.
    """
    if size < 16 or size % 2:
        raise ValueError(f"size must be an even number >= 16, got {size}")
    if not 2 <= min_frames <= max_frames:
        raise ValueError(f"need 2 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    if num_train < 0 or num_val < 0:
        raise ValueError(f"num_train and num_val must be >= 0, got {num_train}, {num_val}")
    if task not in TASK_CLASSES:
        raise ValueError(f"task must be one of {list(TASK_CLASSES)}, got {task!r}")
    if task in PAIR_TASKS:
        same_shape.check_distances(size, min_distance, max_distance)
    else:  # distances do not apply: keep them out of the manifest's identity
        min_distance, max_distance = SyntheticParams.min_distance, SyntheticParams.max_distance
    params = SyntheticParams(
        num_train,
        num_val,
        seed,
        size,
        min_frames,
        max_frames,
        fps,
        crf,
        gop,
        task=task,
        min_distance=float(min_distance),
        max_distance=None if max_distance is None else float(max_distance),
    )
    classes = TASK_CLASSES[task]
    root = Path(root) / parameter_folder(params)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        if _is_cached(root, params):
            logger.info("built-in data set: reusing %s", root)
            return _result(root, classes)
        logger.info("built-in data set: generating %d + %d clips in %s", num_train, num_val, root)
        (root / "manifest.json").unlink(missing_ok=True)
        for split in _SPLITS:
            shutil.rmtree(root / split, ignore_errors=True)
            for name in classes:
                (root / split / name).mkdir(parents=True)
        jobs = _clip_jobs(params)
        tasks = [(root, params, split, i, rel) for split, i, rel in jobs]
        workers = workers or min(len(tasks), os.cpu_count() or 1, 8)
        if workers > 1 and len(tasks) > 1:
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(_make_clip, tasks, chunksize=8))
        else:
            for task in tasks:
                _make_clip(task)
        for split in _SPLITS:
            lines = [
                f"{rel} {classes.index(Path(rel).parent.name)}\n"
                for s, _, rel in jobs
                if s == split
            ]
            (root / f"{split}.txt").write_text("".join(lines))
        (root / "classes.json").write_text(json.dumps(list(classes), indent=1) + "\n")
        files = [rel for *_, rel in jobs] + ["train.txt", "val.txt", "classes.json"]
        manifest = {"params": asdict(params), "classes": list(classes), "files": files}
        tmp = root / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(tmp, root / "manifest.json")
    return _result(root, classes)
