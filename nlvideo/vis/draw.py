"""Pictures of a block's attention: arrows across the clip's frames (PNG), a heat-map GIF.

The paper's Figure 3: the frames the block sees side by side (one panel per time step of its
query grid), and from each query an arrow to each of its top-k keys; line width and opacity
grow with the weight. The GIF shows one query's whole attention map over the panels.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from nlvideo.vis.attention import AttentionResult, Point

GAP = 4  # white pixels between panels
PALETTE = ((255, 215, 0), (0, 220, 255), (255, 70, 200), (120, 255, 80), (255, 120, 40))
HEAT_ALPHA = 0.5  # weight of the heat map over the frame in the GIF
GIF_FRAME_MS = 400


@dataclass(frozen=True)
class Arrow:
    """One drawn arrow, in picture pixels (for tests and callers that add their own marks)."""

    query: int  # index into AttentionResult.queries
    x0: float
    y0: float
    x1: float
    y1: float
    weight: float


@dataclass(frozen=True)
class Layout:
    """Where clip positions land in the picture: one panel per time step of the query grid."""

    num_frames: int  # T_in of the clip
    panels: int  # T of the block's query grid
    height: int
    width: int
    zoom: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the picture."""
        w = self.width * self.zoom
        return self.panels * w + (self.panels - 1) * GAP, self.height * self.zoom

    def panel(self, frame: int) -> int:
        return min(frame * self.panels // self.num_frames, self.panels - 1)

    def shown_frame(self, panel: int) -> int:
        """The clip frame a panel shows: the middle of the frames its time step covers."""
        return int((panel + 0.5) * self.num_frames / self.panels)

    def position(self, p: Point) -> tuple[float, float]:
        left = self.panel(p.frame) * (self.width * self.zoom + GAP)
        return left + p.x * self.zoom, p.y * self.zoom


def _layout(frames: np.ndarray, result: AttentionResult, zoom: int) -> Layout:
    t, h, w = frames.shape[:3]
    return Layout(t, result.query_shape[0], h, w, zoom)


def _panels(frames: np.ndarray, layout: Layout) -> Image.Image:
    canvas = Image.new("RGB", layout.size, "white")
    size = (layout.width * layout.zoom, layout.height * layout.zoom)
    for p in range(layout.panels):
        tile = Image.fromarray(frames[layout.shown_frame(p)]).resize(size, Image.NEAREST)
        canvas.paste(tile, (p * (size[0] + GAP), 0))
    return canvas


def _mark(draw: ImageDraw.ImageDraw, xy: tuple[float, float], colour: tuple, radius: float):
    x, y = xy
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour, outline="white")


def draw_attention(
    frames: np.ndarray, result: AttentionResult, *, zoom: int = 1
) -> tuple[Image.Image, list[Arrow]]:
    """The clip's panels with an arrow from every query to each of its top-k keys.

    Args:
        frames: uint8 ``(T, H, W, 3)`` frames of the clip the model saw.
        result: What ``attention_maps`` found for that clip.
        zoom: Integer magnification of the frames (small crops).
    """
    layout = _layout(frames, result, zoom)
    overlay = Image.new("RGBA", layout.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    arrows = []
    for qi, q in enumerate(result.queries):
        colour = PALETTE[qi % len(PALETTE)]
        qx, qy = layout.position(q.query)
        top = max((k.weight for k in q.keys), default=0.0) or 1.0
        for key in reversed(q.keys):  # the heaviest drawn last, on top
            r = key.weight / top
            kx, ky = layout.position(Point(key.frame, key.y, key.x))
            rgba = (*colour, int(255 * (0.25 + 0.75 * r)))
            width = max(1, round((1 + 3 * r) * max(1, zoom // 2)))
            draw.line([(qx, qy), (kx, ky)], fill=rgba, width=width)
            _arrow_head(draw, (qx, qy), (kx, ky), 3 + 5 * r, rgba)
            arrows.append(Arrow(qi, qx, qy, kx, ky, key.weight))
        _mark(draw, (qx, qy), (*colour, 255), 2 + zoom)
    picture = Image.alpha_composite(_panels(frames, layout).convert("RGBA"), overlay)
    return picture.convert("RGB"), arrows


def _arrow_head(draw, start, end, size, rgba) -> None:
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = math.hypot(dx, dy)
    if length < 1e-6:
        return
    ux, uy = dx / length, dy / length
    back = (end[0] - size * ux, end[1] - size * uy)
    side = (-uy * size / 2, ux * size / 2)
    tip = [end, (back[0] + side[0], back[1] + side[1]), (back[0] - side[0], back[1] - side[1])]
    draw.polygon(tip, fill=rgba)


def heatmap_frames(
    frames: np.ndarray, result: AttentionResult, *, query: int = 0, zoom: int = 1
) -> list[Image.Image]:
    """One picture per panel: the frame under query ``query``'s attention to its keys.

    Colours share one scale over all panels (the query's largest weight = brightest).
    """
    from matplotlib import colormaps  # only here: the import is slow

    layout = _layout(frames, result, zoom)
    q = result.queries[query]
    weights = q.weights  # (T', H', W')
    top = float(weights.max()) or 1.0
    size = (layout.width * zoom, layout.height * zoom)
    key_t = weights.shape[0]
    out = []
    for p in range(layout.panels):
        # key time steps whose middle frame falls in this panel
        steps = [
            t for t in range(key_t) if layout.panel(int((t + 0.5) * layout.num_frames / key_t)) == p
        ]
        heat = weights[steps].sum(axis=0) / top if steps else np.zeros(weights.shape[1:])
        rgb = (colormaps["inferno"](np.clip(heat, 0, 1))[..., :3] * 255).astype(np.uint8)
        heat_img = Image.fromarray(rgb).resize(size, Image.BILINEAR)
        frame = Image.fromarray(frames[layout.shown_frame(p)]).resize(size, Image.NEAREST)
        picture = Image.blend(frame, heat_img, HEAT_ALPHA)
        if layout.panel(q.query.frame) == p:
            _mark(
                ImageDraw.Draw(picture), (q.query.x * zoom, q.query.y * zoom), PALETTE[0], 2 + zoom
            )
        out.append(picture)
    return out


def save_attention(
    result: AttentionResult,
    frames: np.ndarray,
    out_dir: str | Path,
    stem: str,
    *,
    zoom: int = 1,
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``stem.png`` (arrows), ``stem.gif`` (first query's heat map), ``stem.json``.

    Returns:
        The three paths by kind ("png", "gif", "json").
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"{stem}.{kind}" for kind in ("png", "gif", "json")}
    picture, _ = draw_attention(frames, result, zoom=zoom)
    picture.save(paths["png"])
    if result.queries:
        gif = heatmap_frames(frames, result, zoom=zoom)
        gif[0].save(
            paths["gif"], save_all=True, append_images=gif[1:], duration=GIF_FRAME_MS, loop=0
        )
    else:
        paths.pop("gif")
    paths["json"].write_text(json.dumps({**(extra or {}), **result.to_json()}, indent=2) + "\n")
    return paths
