"""Clips of the "same shape (or colour) at the start and at the end?" tasks: far relations decide.

Frames of the first half show shape S1 at centre p1, frames of the second half shape S2 at p2
(4 frames: 0-1 and 2-3), on a static noise background. Both shapes have the same random size,
each its own random colour (colour is no cue); the label is ``S1 == S2``. Within either class
S1 and S2 are each uniform over the three shapes, so features pooled per object and a linear
layer cannot solve it (the task is XOR-like): a network must compare the two shapes, which sit
``min_distance``..``max_distance`` pixels apart (centre to centre, Euclidean).

``compare="colour"`` (the ``same_colour`` task) swaps the roles: S1 and S2 each take one of
two palette colours (jittered), uniform within both classes, the label is "same colour", and
the shapes are independent nuisance. A colour is what any conv layer sees at once, so that task
isolates the relation itself; a shape's identity has to be learnt first, and the label, being
XOR-like, gives a shape detector no gradient of its own (experiments/README.md).

The ``shape_names`` task renders the very clips of ``same_shape`` (same seed, same frames) and
labels each with its two shapes in order, ``S1_S2`` (9 classes, ``pair_name``): each shape's
identity is then a label of its own, a first-order task that teaches the shape detectors which
"same shape?" needs and cannot teach; the ``same_shape`` recipe fine-tunes from it.

With the default ``min_distance`` of 32 px the shapes are further apart than the receptive
field of the tiny nets' res3 (27 px), so a plain I3D must relate them through its deepest
layers; a Non-local block relates any two positions directly. ``max_distance=0`` is the near
control: S2 appears exactly where S1 was.

Pure rendering (numpy + PIL); ``nlvideo.builtin.generate`` writes the clips to files. Any
change that alters pixels must bump ``generate.GENERATOR_VERSION``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

CLASSES: tuple[str, ...] = ("different", "same")  # label = index % 2 = (S1 == S2)
SHAPES: tuple[str, ...] = ("square", "disk", "triangle")


def value_pairs(count: int) -> dict[str, tuple[tuple[int, int], ...]]:
    """Ordered pairs of ``count`` compared values (shape or palette indices) per class: each
    value is first (and second) equally often within a class."""
    values = range(count)
    return {
        "same": tuple((a, a) for a in values),
        "different": tuple((a, b) for a in values for b in values if a != b),
    }


# The shape_names task's classes: S1 and S2 in order, e.g. "disk_square".
PAIR_NAMES: tuple[str, ...] = tuple(f"{a}_{b}" for a in SHAPES for b in SHAPES)


def compared_values(index: int, count: int) -> tuple[str, int, int]:
    """Clip ``index``'s class and its two compared values (indices among ``count``).

    The class is ``CLASSES[index % 2]``; the values cycle through the class's ordered pairs
    with ``index // 2``, so each value is uniform within each class.
    """
    label = CLASSES[index % len(CLASSES)]
    pairs = value_pairs(count)[label]
    v1, v2 = pairs[(index // len(CLASSES)) % len(pairs)]
    return label, v1, v2


def pair_name(index: int) -> str:
    """The two shapes of clip ``index`` (``compare="shape"``), S1 then S2: its shape_names class."""
    _, s1, s2 = compared_values(index, len(SHAPES))
    return f"{SHAPES[s1]}_{SHAPES[s2]}"


COMPARED: tuple[str, ...] = ("shape", "colour")  # what "same" means
# The same_colour task's two colours, blue and yellow (each channel jittered by PALETTE_JITTER):
# apart in hue and in luminance (0.20 / 0.83), so "same colour?" is a pure XOR. With three
# colours the nets sat for hundreds of steps at 83% (one pair of colours called "same") and
# some seeds ended there (experiments/README.md).
PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.10, 0.15, 0.75),
    (0.95, 0.90, 0.20),
)
PALETTE_JITTER = 0.08
RADIUS_RANGE = (6.0, 10.0)  # shape radius in pixels (absolute, whatever the frame size)
_MARGIN = 1.0  # pixels between a shape and the frame border
_SUPERSAMPLE = 4  # shapes are drawn at 4x and box-filtered down (anti-aliasing)
_MAX_TRIES = 100_000
# Unit-radius polygons (x right, y down); the square has about the disk's area.
_VERTICES: dict[str, tuple[tuple[float, float], ...]] = {
    "square": ((-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)),
    "triangle": ((0.0, -1.0), (0.9, 0.8), (-0.9, 0.8)),
}  # rejection sampling of the two centres


@dataclass(frozen=True)
class SameShapeClip:
    """Ground truth of one clip (used by tests and figures)."""

    label: str  # "same" or "different"
    shapes: tuple[str, str]  # S1, S2
    centres: tuple[tuple[float, float], tuple[float, float]]  # p1, p2 as (x, y) pixels
    radius: float
    colours: tuple[tuple[float, ...], tuple[float, ...]]  # RGB in [0, 1] of S1 and S2


def _shape_alpha(shape: str, centre: tuple[float, float], radius: float, size: int) -> np.ndarray:
    """Anti-aliased coverage (H, W) in [0, 1] of an upright square, disk or triangle."""
    s = _SUPERSAMPLE
    cx, cy, r = centre[0] * s, centre[1] * s, radius * s
    img = Image.new("L", (size * s, size * s), 0)
    draw = ImageDraw.Draw(img)
    if shape == "disk":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape in _VERTICES:
        draw.polygon([(cx + x * r, cy + y * r) for x, y in _VERTICES[shape]], fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {list(SHAPES)}")
    return np.asarray(img.resize((size, size), Image.BOX), dtype=np.float32) / 255.0


def _colour(rng: np.random.Generator, background: float) -> np.ndarray:
    """A saturated colour whose luminance differs clearly from the background's."""
    for _ in range(100):
        colour = rng.uniform(0, 1, size=3)
        colour[rng.integers(3)] = rng.choice([0.0, 1.0])
        if abs(float(colour @ np.array([0.299, 0.587, 0.114])) - background) > 0.25:
            return colour.astype(np.float32)
    return np.full(3, 0.0 if background > 0.5 else 1.0, dtype=np.float32)


def _palette_colour(rng: np.random.Generator, index: int) -> np.ndarray:
    """Palette colour ``index`` with each channel jittered, so no two "same" colours are equal."""
    jitter = rng.uniform(-PALETTE_JITTER, PALETTE_JITTER, size=3)
    return np.clip(np.asarray(PALETTE[index]) + jitter, 0.0, 1.0).astype(np.float32)


def sample_centres(
    rng: np.random.Generator,
    *,
    size: int,
    radius: float,
    min_distance: float,
    max_distance: float | None,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Two shape centres inside the frame, ``min_distance <= |p1 - p2| <= max_distance``.

    Uniform over the pairs of centres that keep both shapes inside the frame and obey the
    rule (rejection sampling); ``max_distance=0`` gives ``p2 = p1``, ``None`` no upper bound.

    Raises:
        ValueError: the rule cannot be met in a frame of this size.
    """
    lo, hi = radius + _MARGIN, size - radius - _MARGIN
    if max_distance == 0:
        p = rng.uniform(lo, hi, size=2)
        return (float(p[0]), float(p[1])), (float(p[0]), float(p[1]))
    upper = math.inf if max_distance is None else max_distance
    for _ in range(_MAX_TRIES // 256):
        p = rng.uniform(lo, hi, size=(256, 4))  # 256 candidate (x1, y1, x2, y2) at a time
        d = np.hypot(p[:, 0] - p[:, 2], p[:, 1] - p[:, 3])
        ok = np.flatnonzero((d >= min_distance) & (d <= upper))
        if ok.size:
            x1, y1, x2, y2 = (float(v) for v in p[ok[0]])
            return (x1, y1), (x2, y2)
    raise ValueError(
        f"no two centres {min_distance}..{max_distance} px apart fit a {size}x{size} frame "
        f"with shapes of radius {radius:.1f}"
    )


def check_distances(size: int, min_distance: float, max_distance: float | None) -> None:
    """Raise ValueError (naming the values) when the distance rule cannot be met at ``size``."""
    if min_distance < 0 or (max_distance is not None and max_distance < min_distance):
        raise ValueError(
            f"need 0 <= min_distance <= max_distance, got {min_distance}, {max_distance}"
        )
    reach = math.sqrt(2) * (size - 2 * (RADIUS_RANGE[1] + _MARGIN))  # corner to corner
    if min_distance > 0.9 * reach:
        raise ValueError(
            f"min_distance {min_distance} px does not fit a {size}x{size} frame "
            f"(at most ~{0.9 * reach:.0f} px between the centres of the largest shapes)"
        )


def render_same_shape_clip(
    index: int,
    rng: np.random.Generator,
    *,
    size: int = 64,
    num_frames: int = 4,
    min_distance: float = 32.0,
    max_distance: float | None = None,
    compare: str = "shape",
) -> tuple[np.ndarray, SameShapeClip]:
    """Render clip ``index`` of a split: its class is ``CLASSES[index % 2]``.

    The pair of compared values (shapes, or palette colours with ``compare="colour"``) cycles
    through the class's ordered pairs with ``index // 2``, so each value is uniform within each
    class (exactly, for every whole cycle of clips); with ``compare="colour"`` the two shapes
    are drawn independently.

    Returns:
        uint8 RGB frames (T, H, W, 3) and the clip's ground truth.
    """
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    if compare not in COMPARED:
        raise ValueError(f"compare must be one of {list(COMPARED)}, got {compare!r}")
    label, v1, v2 = compared_values(index, len(SHAPES) if compare == "shape" else len(PALETTE))
    if compare == "shape":
        s1, s2 = v1, v2
    else:
        s1, s2 = (int(s) for s in rng.integers(len(SHAPES), size=2))
    radius = float(rng.uniform(*RADIUS_RANGE))
    p1, p2 = sample_centres(
        rng, size=size, radius=radius, min_distance=min_distance, max_distance=max_distance
    )
    grey = float(rng.uniform(0.2, 0.8))
    background = grey + rng.normal(0.0, rng.uniform(0.05, 0.12), size=(size, size, 1))
    background = np.repeat(background, 3, axis=2)
    if compare == "shape":
        colours = (_colour(rng, grey), _colour(rng, grey))
    else:
        colours = (_palette_colour(rng, v1), _palette_colour(rng, v2))
    alphas = (
        _shape_alpha(SHAPES[s1], p1, radius, size)[..., None],
        _shape_alpha(SHAPES[s2], p2, radius, size)[..., None],
    )
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        k = 0 if t < num_frames // 2 else 1
        img = background * (1 - alphas[k]) + colours[k] * alphas[k]
        img = img + rng.normal(0.0, 0.02, size=img.shape)  # per-frame grain
        frames[t] = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgb = (tuple(float(v) for v in colours[0]), tuple(float(v) for v in colours[1]))
    truth = SameShapeClip(label, (SHAPES[s1], SHAPES[s2]), (p1, p2), radius, rgb)
    return frames, truth
