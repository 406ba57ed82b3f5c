"""Where a Non-local block looks: queries, their top-k keys, in the clip's pixel coordinates.

A block sees a feature map ``(T, H, W)`` of the clip ``(T_in, H_in, W_in)`` (the network's
strides) and attends to keys on a coarser grid ``(T', H', W')`` (its sub-sampling). A cell of
either grid is placed at its centre in pixels, ``(i + 0.5) * H_in / H``, and at the middle frame
of the frames it covers, ``floor((t + 0.5) * T_in / T)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from nlvideo.models.hooks import AttentionCapture, capture_attention


@dataclass(frozen=True)
class Point:
    """A position in the clip: frame index, then pixel row and column (cell centre)."""

    frame: int
    y: float
    x: float


@dataclass
class Key:
    """One attended key and its weight."""

    frame: int
    y: float
    x: float
    weight: float


@dataclass
class QueryResult:
    """One query of the block and the keys it attends to most."""

    query: Point
    cell: tuple[int, int, int]  # (t, y, x) in the block's query grid
    response: float  # channel norm of what the block adds at this cell
    keys: list[Key]  # top-k, largest weight first
    weights: np.ndarray = field(repr=False)  # (T', H', W') the query's whole attention map


@dataclass
class AttentionResult:
    """Everything ``attention_maps`` found for one clip."""

    block: str
    mode: str
    clip_shape: tuple[int, int, int]  # (T_in, H_in, W_in) of the model input
    query_shape: tuple[int, int, int]
    key_shape: tuple[int, int, int]
    queries: list[QueryResult]
    logits: np.ndarray  # (num_classes,) of the clip

    def to_json(self) -> dict:
        """Plain data: grids, and per query its position and top-k (frame, y, x, weight)."""
        return {
            "block": self.block,
            "mode": self.mode,
            "clip_shape": list(self.clip_shape),
            "query_grid": list(self.query_shape),
            "key_grid": list(self.key_shape),
            "queries": [
                {
                    **asdict(q.query),
                    "cell": list(q.cell),
                    "response": round(q.response, 6),
                    "keys": [{**asdict(k), "weight": round(k.weight, 6)} for k in q.keys],
                }
                for q in self.queries
            ],
        }


def cell_centre(cell: Sequence[int], grid: Sequence[int], clip_shape: Sequence[int]) -> Point:
    """Pixel position of a cell ``(t, y, x)`` of a ``(T, H, W)`` grid over ``clip_shape``."""
    (t, y, x), (gt, gh, gw), (ct, ch, cw) = cell, grid, clip_shape
    return Point(int((t + 0.5) * ct / gt), (y + 0.5) * ch / gh, (x + 0.5) * cw / gw)


def point_to_cell(
    point: Point, grid: Sequence[int], clip_shape: Sequence[int]
) -> tuple[int, int, int]:
    """The cell of a ``(T, H, W)`` grid that covers a clip position.

    Raises:
        ValueError: the position lies outside the clip.
    """
    ct, ch, cw = clip_shape
    if not (0 <= point.frame < ct and 0 <= point.y < ch and 0 <= point.x < cw):
        raise ValueError(
            f"query t,y,x = {point.frame},{point.y:g},{point.x:g} is outside the clip "
            f"(frames 0..{ct - 1}, y 0..{ch - 1}, x 0..{cw - 1})"
        )
    return tuple(
        int(p * g // c)
        for p, g, c in zip((point.frame, point.y, point.x), grid, clip_shape, strict=True)
    )


def strongest_cells(response: Tensor, count: int) -> list[tuple[int, int, int]]:
    """The ``count`` cells of a ``(T, H, W)`` response with the largest values, largest first."""
    flat = response.flatten()
    top = flat.topk(min(count, flat.numel())).indices.tolist()
    return [tuple(int(i) for i in np.unravel_index(j, tuple(response.shape))) for j in top]


def top_keys(
    seen: AttentionCapture,
    clip_shape: Sequence[int],
    cells: Sequence[tuple[int, int, int]],
    k: int,
    *,
    sample: int = 0,
) -> list[QueryResult]:
    """The ``k`` heaviest keys of each query cell, in clip coordinates."""
    _, h, w = seen.query_shape
    results = []
    for cell in cells:
        index = (cell[0] * h + cell[1]) * w + cell[2]
        row = seen.attention[sample, index]  # (M,)
        top = row.topk(min(k, row.numel()))
        keys = []
        for weight, j in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            key_cell = np.unravel_index(j, seen.key_shape)
            p = cell_centre(key_cell, seen.key_shape, clip_shape)
            keys.append(Key(p.frame, p.y, p.x, weight))
        results.append(
            QueryResult(
                query=cell_centre(cell, seen.query_shape, clip_shape),
                cell=tuple(int(c) for c in cell),
                response=float(seen.response[sample][cell]),
                keys=keys,
                weights=row.reshape(seen.key_shape).numpy(),
            )
        )
    return results


@torch.no_grad()
def attention_maps(
    model: nn.Module,
    clip: Tensor,
    *,
    block: str | None = None,
    queries: Sequence[Point] = (),
    num_queries: int = 3,
    k: int = 20,
) -> AttentionResult:
    """Run one model-ready clip ``(1, 3, T, H, W)`` and read a block's attention.

    Args:
        model: Any network with ``NLBlockND`` blocks (eval mode).
        clip: One normalised test view.
        block: Module name of the block; None = the first res3 block.
        queries: Clip positions to query; none = the ``num_queries`` cells where the block's
            response (the norm of what it adds to its input) is strongest.
        num_queries: How many queries to choose when none are given.
        k: Keys kept per query.

    Raises:
        ValueError: unknown block (the valid names are listed) or a query outside the clip.
    """
    if clip.dim() != 5 or clip.shape[0] != 1:
        raise ValueError(f"expected one clip (1, 3, T, H, W), got {tuple(clip.shape)}")
    with capture_attention(model, block) as seen:
        logits = model(clip)
    clip_shape = tuple(clip.shape[2:])
    if queries:
        cells = [point_to_cell(q, seen.query_shape, clip_shape) for q in queries]
    else:
        cells = strongest_cells(seen.response[0], num_queries)
    mode = next(m.mode for n, m in model.named_modules() if n == seen.name)
    return AttentionResult(
        block=seen.name,
        mode=mode,
        clip_shape=clip_shape,
        query_shape=seen.query_shape,
        key_shape=seen.key_shape,
        queries=top_keys(seen, clip_shape, cells, k),
        logits=logits[0].float().cpu().numpy(),
    )


def clip_frames(clip: Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised ``(1, 3, T, H, W)`` clip back to uint8 frames ``(T, H, W, 3)``."""
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1)
    frames = (clip[0].float().cpu() * s + m) * 255.0  # (3, T, H, W)
    return frames.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
