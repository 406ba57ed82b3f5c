"""Write small data-set trees in the field's layouts from the built-in motion clips (a demo).

    python datasets/make_demo_trees.py --out data/demo --per-class 12

writes ``<out>/ucf101/`` (UCF-101/<Class>/v_<Class>_gGG_c01.avi as MPEG-4 Part 2 AVI, and
ucfTrainTestlist/ with classInd.txt and the three train/test lists, 1-based labels, as
shipped) and ``<out>/folder/<class>/*.mp4|*.mkv`` (your own videos in class folders), with
the first four built-in classes (move_left / move_right / move_up / move_down), each tinted
in its class's colour so a short CPU run learns them (``--motion-only``: without).
Then, e.g.::

    python -m nlvideo.cli.train data.builtin=false data.root=data/demo/ucf101 ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from nlvideo.builtin.render import CLASSES, render_clip

NAMES = {
    "move_left": "MoveLeft",
    "move_right": "MoveRight",
    "move_up": "MoveUp",
    "move_down": "MoveDown",
}
CODECS = {
    ".avi": ("mpeg4", {"qscale": "3"}),
    ".mp4": ("libx264", {"crf": "18"}),
    ".mkv": ("libx264", {"crf": "18"}),
}


def write_video(path: Path, frames: np.ndarray, fps: int = 25) -> None:
    """uint8 RGB (T, H, W, 3) frames as .avi (MPEG-4 Part 2), .mp4 or .mkv (H.264)."""
    codec, options = CODECS[path.suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = options
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


TINTS = {
    "move_left": (255, 0, 0),
    "move_right": (0, 255, 0),
    "move_up": (0, 0, 255),
    "move_down": (255, 255, 0),
}
CUE = True  # a class-coloured tint as well as the motion (set by --motion-only)


def clip(name: str, index: int, seed: int, size: int) -> np.ndarray:
    """A built-in clip of ``name``; with ``CUE``, tinted in the class's colour.

    The tint makes the classes learnable from a few dozen videos in a minute of CPU (the
    motion alone needs the built-in set's ~1,000 videos), so a demo run's accuracy shows
    whether the labels reached the model intact.
    """
    rng = np.random.default_rng([seed, CLASSES.index(name), index])
    frames, _ = render_clip(name, rng, size=size, num_frames=int(rng.integers(20, 33)))
    if CUE:  # 30% of the class colour over the whole frame: no crop removes it
        colour = np.array(TINTS[name], np.float32)
        frames = (0.7 * frames.astype(np.float32) + 0.3 * colour).round().astype(np.uint8)
    return frames


def write_ucf101(root: Path, per_class: int, seed: int, size: int) -> None:
    """UCF101 layout; group g is in the test list of split s when (g + s) % 3 == 0."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    names = list(NAMES.values())
    (lists / "classInd.txt").write_text("".join(f"{i} {n}\r\n" for i, n in enumerate(names, 1)))
    split_lines: dict[int, tuple[list[str], list[str]]] = {s: ([], []) for s in (1, 2, 3)}
    for ci, (source, name) in enumerate(NAMES.items()):
        for g in range(1, per_class + 1):
            rel = f"{name}/v_{name}_g{g:02d}_c01.avi"
            write_video(root / "UCF-101" / rel, clip(source, g, seed, size))
            for s, (train, test) in split_lines.items():
                (test.append(rel) if (g + s) % 3 == 0 else train.append(f"{rel} {ci + 1}"))
    for s, (train, test) in split_lines.items():
        (lists / f"trainlist0{s}.txt").write_text("".join(f"{x}\r\n" for x in train))
        (lists / f"testlist0{s}.txt").write_text("".join(f"{x}\r\n" for x in test))


def write_folder(root: Path, per_class: int, seed: int, size: int) -> None:
    """root/<class>/<class>_NN.mp4|.mkv."""
    for source in NAMES:
        for v in range(per_class):
            ext = ".mkv" if v % 2 else ".mp4"
            write_video(root / source / f"{source}_{v:02d}{ext}", clip(source, 100 + v, seed, size))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=12)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--motion-only", action="store_true", help="no class-coloured tint (a harder set)"
    )
    args = parser.parse_args(argv)
    global CUE
    CUE = not args.motion_only
    write_ucf101(args.out / "ucf101", args.per_class, args.seed, args.size)
    write_folder(args.out / "folder", args.per_class, args.seed, args.size)
    print(f"wrote {args.out / 'ucf101'} and {args.out / 'folder'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
