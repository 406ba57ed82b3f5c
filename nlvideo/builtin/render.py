"""Clips of the built-in data set: eight motion classes that only temporal order tells apart.

Eight classes in four time-reversed pairs: move left/right, move up/down, rotate
clockwise/anticlockwise, grow/shrink. Each clip of the second class of a pair is the exact
time reversal of a clip of the first class drawn from the same parameters, and the
parameter distributions are symmetric, so no single frame and no unordered set of frames
identifies the class: only the order does. A model blind to time order (C2D) can at best
find the pair (axis of motion), scoring ~50% on the direction within it.

Nuisance factors vary per clip: shape, two-colour plaid texture (painted in object
coordinates, so motion shows over the whole object), speed, start position and angle,
length, a smooth or striped static background with grain, per-frame noise, and a static
distractor shape in half of the clips.

Train without horizontal flips (``data.flip=false``): a mirrored move_left clip is a
move_right clip, and a mirrored clockwise rotation an anticlockwise one.

Pure rendering (numpy + PIL): ``nlvideo.builtin.generate`` writes the clips to files. Any change
here that alters pixels must bump ``synthetic.GENERATOR_VERSION`` so cached sets regenerate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

CLASSES: tuple[str, ...] = (
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "rotate_clockwise",
    "rotate_anticlockwise",
    "grow",
    "shrink",
)

# class -> (motion kind, whether the clip is the time reversal of the kind's forward motion).
# Forward motions: x increasing (right), y increasing (down on screen), angle increasing in
# image coordinates (clockwise on screen), radius increasing (grow).
_MOTION: dict[str, tuple[str, bool]] = {
    "move_left": ("horizontal", True),
    "move_right": ("horizontal", False),
    "move_up": ("vertical", True),
    "move_down": ("vertical", False),
    "rotate_clockwise": ("rotation", False),
    "rotate_anticlockwise": ("rotation", True),
    "grow": ("scale", False),
    "shrink": ("scale", True),
}

# Time-reversal pairs (each class maps to the class its reversed clips belong to).
REVERSED_CLASS: dict[str, str] = {
    "move_left": "move_right",
    "move_right": "move_left",
    "move_up": "move_down",
    "move_down": "move_up",
    "rotate_clockwise": "rotate_anticlockwise",
    "rotate_anticlockwise": "rotate_clockwise",
    "grow": "shrink",
    "shrink": "grow",
}


def _regular(n: int, inner: float | None = None) -> list[tuple[float, float]]:
    """A regular n-gon (or a 2n-point star when ``inner`` is given) of radius 1."""
    if inner is None:
        angles = [2 * math.pi * k / n - math.pi / 2 for k in range(n)]
        return [(math.cos(a), math.sin(a)) for a in angles]
    pts = []
    for k in range(2 * n):
        r = 1.0 if k % 2 == 0 else inner
        a = math.pi * k / n - math.pi / 2
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _poly(points: str) -> list[tuple[float, float]]:
    """Vertices from "x,y x,y ..." text."""
    return [tuple(float(v) for v in p.split(",")) for p in points.split()]


# Unit-size polygons (x right, y down). The rotating shapes are elongated and have no
# rotational symmetry, so their orientation is visible in every frame.
SHAPES: dict[str, list[tuple[float, float]]] = {
    "circle": _regular(32),
    "square": _poly("-0.8,-0.8 0.8,-0.8 0.8,0.8 -0.8,0.8"),
    "hexagon": _regular(6),
    "star": _regular(5, inner=0.45),
    "cross": _poly("-.3,-1 .3,-1 .3,-.3 1,-.3 1,.3 .3,.3 .3,1 -.3,1 -.3,.3 -1,.3 -1,-.3 -.3,-.3"),
    "triangle": _poly("0,-1 0.5,0.9 -0.5,0.9"),
    "ell": _poly("-0.7,-1 -0.2,-1 -0.2,0.5 0.6,0.5 0.6,1 -0.7,1"),
    "tee": _poly("-.9,-1 .9,-1 .9,-.55 .25,-.55 .25,1 -.25,1 -.25,-.55 -.9,-.55"),
    "arrow": _poly("0,-1 0.6,-0.3 0.2,-0.3 0.2,1 -0.2,1 -0.2,-0.3 -0.6,-0.3"),
}
ROTATING_SHAPES: tuple[str, ...] = ("triangle", "ell", "tee", "arrow")

_SUPERSAMPLE = 4  # polygons are drawn at 4x and box-filtered down (anti-aliasing)


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """A static textured background (smooth colour noise, optional stripes, fine grain)."""
    base = rng.uniform(0.15, 0.85, size=3)
    grid = rng.integers(3, 9)
    coarse = rng.normal(0.0, 1.0, size=(grid, grid, 3)).astype(np.float32)
    smooth = np.stack(
        [
            np.asarray(Image.fromarray(coarse[..., c]).resize((size, size), Image.BICUBIC))
            for c in range(3)
        ],
        axis=-1,
    )
    bg = base + rng.uniform(0.03, 0.12) * smooth
    if rng.random() < 0.3:  # static stripes at a random angle
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(6, 16) * size / 64
        phase = (xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / period
        bg = bg + rng.uniform(0.03, 0.08) * np.sin(phase)[..., None]
    bg = bg + rng.normal(0.0, 0.02, size=bg.shape)
    return bg.astype(np.float32), _luma(base)


def _contrasting_colour(rng: np.random.Generator, bg_luma: float) -> np.ndarray:
    """A saturated colour whose luminance differs clearly from the background's."""
    for _ in range(100):
        colour = rng.uniform(0, 1, size=3)
        colour[rng.integers(3)] = rng.choice([0.0, 1.0])  # push towards saturation
        if abs(_luma(colour) - bg_luma) > 0.25:
            return colour.astype(np.float32)
    return np.full(3, 0.0 if bg_luma > 0.5 else 1.0, dtype=np.float32)


def _polygon_alpha(
    shape: str, centre: tuple[float, float], radius: float, angle: float, size: int
) -> np.ndarray:
    """Anti-aliased coverage (H, W) in [0, 1] of a rotated, scaled, translated shape."""
    s = _SUPERSAMPLE
    c, si = math.cos(angle), math.sin(angle)
    pts = [
        (
            (x * c - y * si) * radius * s + centre[0] * s,
            (x * si + y * c) * radius * s + centre[1] * s,
        )
        for x, y in SHAPES[shape]
    ]
    img = Image.new("L", (size * s, size * s), 0)
    ImageDraw.Draw(img).polygon(pts, fill=255)
    return np.asarray(img.resize((size, size), Image.BOX), dtype=np.float32) / 255.0


def _object_fill(
    pose: tuple[float, float, float, float],
    colours: tuple[np.ndarray, np.ndarray],
    cycles: float,
    phases: np.ndarray,
    size: int,
) -> np.ndarray:
    """(H, W, 3) two-colour plaid painted in object coordinates: it moves, turns and scales
    with the object, so motion shows over the whole object, not only along its outline."""
    cx, cy, radius, angle = pose
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    c, s = math.cos(angle), math.sin(angle)
    u = ((xx - cx) * c + (yy - cy) * s) / radius  # image -> object coordinates
    v = (-(xx - cx) * s + (yy - cy) * c) / radius
    k = 2 * math.pi * cycles
    weight = 0.5 + 0.5 * np.sin(k * u + phases[0]) * np.sin(k * v + phases[1])
    return colours[0] * (1 - weight[..., None]) + colours[1] * weight[..., None]


def _trajectory(
    kind: str, rng: np.random.Generator, size: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Forward motion of one clip: per-frame centre x, centre y, radius and angle.

    Every parameter is drawn from a distribution that is symmetric under time reversal
    (e.g. the start and end of a path are exchangeable), so a reversed forward clip is a
    sample of the paired class.
    """
    t = np.arange(n, dtype=np.float64)
    margin = 2.0
    if kind in ("horizontal", "vertical"):
        radius = rng.uniform(0.12, 0.2) * size
        room = size - 2 * (radius + margin)
        travel = min(rng.uniform(0.8, 1.5) * size / 64 * (n - 1), 0.95 * room)
        start = rng.uniform(radius + margin, size - radius - margin - travel)
        along = start + travel * t / (n - 1)
        across = np.full(n, rng.uniform(radius + margin, size - radius - margin))
        x, y = (along, across) if kind == "horizontal" else (across, along)
        return x, y, np.full(n, radius), np.full(n, rng.uniform(0, 2 * math.pi))
    if kind == "rotation":
        radius = rng.uniform(0.2, 0.3) * size
        centre = rng.uniform(radius + margin, size - radius - margin, size=2)
        omega = math.radians(rng.uniform(6.0, 12.0))
        angle = rng.uniform(0, 2 * math.pi) + omega * t
        return np.full(n, centre[0]), np.full(n, centre[1]), np.full(n, radius), angle
    if kind == "scale":
        r_min = rng.uniform(0.06, 0.09) * size
        r_max = rng.uniform(0.3, 0.36) * size
        radius = r_min + (r_max - r_min) * t / (n - 1)  # edges move at a constant speed
        centre = rng.uniform(r_max + margin, size - r_max - margin, size=2)
        return np.full(n, centre[0]), np.full(n, centre[1]), radius, np.full(n, rng.uniform(0, 7))
    raise ValueError(f"unknown motion kind {kind!r}")


def render_clip(
    class_name: str, rng: np.random.Generator, *, size: int = 64, num_frames: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Render one clip of ``class_name``.

    Returns:
        ``(frames, alpha)``: uint8 RGB frames (T, H, W, 3) and the object's coverage
        (T, H, W) in [0, 1] (the ground truth, used by tests).
    """
    if class_name not in _MOTION:
        raise ValueError(f"class_name must be one of {list(CLASSES)}, got {class_name!r}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    kind, reverse = _MOTION[class_name]
    bg, bg_luma = _background(rng, size)
    if rng.random() < 0.5:  # a static distractor: motion, not appearance, carries the class
        d_shape = str(rng.choice(list(SHAPES)))
        d_r = rng.uniform(0.06, 0.1) * size
        d_alpha = _polygon_alpha(
            d_shape, tuple(rng.uniform(d_r, size - d_r, 2)), d_r, rng.uniform(0, 7), size
        )[..., None]
        bg = bg * (1 - d_alpha) + _contrasting_colour(rng, bg_luma) * d_alpha
    shape = str(rng.choice(ROTATING_SHAPES if kind == "rotation" else list(SHAPES)))
    colours = (_contrasting_colour(rng, bg_luma), _contrasting_colour(rng, bg_luma))
    cycles, phases = rng.uniform(0.6, 1.4), rng.uniform(0, 2 * math.pi, size=2)
    xs, ys, radii, angles = _trajectory(kind, rng, size, num_frames)
    noise_sigma = rng.uniform(0.0, 0.02)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    alphas = np.empty((num_frames, size, size), dtype=np.float32)
    for i in range(num_frames):
        alpha = _polygon_alpha(shape, (xs[i], ys[i]), radii[i], angles[i], size)
        pose = (xs[i], ys[i], radii[i], angles[i])
        fill = _object_fill(pose, colours, cycles, phases, size)
        img = bg * (1 - alpha[..., None]) + fill * alpha[..., None]
        img = img + rng.normal(0.0, noise_sigma, size=img.shape)
        frames[i] = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        alphas[i] = alpha
    if reverse:
        return frames[::-1].copy(), alphas[::-1].copy()
    return frames, alphas


def class_pairs(classes: Sequence[str] = CLASSES) -> list[tuple[int, int]]:
    """Index pairs of time-reversed classes in ``classes``."""
    index = {c: i for i, c in enumerate(classes)}
    return sorted({tuple(sorted((index[c], index[REVERSED_CLASS[c]]))) for c in classes})
