"""Temporal groups for Non-local blocks: attention within groups of ``G`` consecutive frames.

video-nonlocal-net's frozen-BN ("affine", ``MODEL.USE_AFFINE``) networks run their res3
Non-local blocks within groups of 4 frames: ``lib/models/resnet_video.py`` and
``resnet_video_org.py`` call ``resnet_helper.res_stage_nonlocal_group(..., group_size=4)`` for
res3 when ``USE_AFFINE``, and ``nonlocal_helper.py::add_nonlocal_group`` reshapes
``(N, C, T, H, W)`` to ``(N * T / 4, C, 4, H, W)`` (transpose, reshape, transpose: frames
``4i .. 4i + 3`` of sample ``n`` become batch item ``n * T / 4 + i``), runs the block (residual
sum included) and reshapes back (facebookresearch/video-nonlocal-net@c253ed5). Grouping is the
block run separately on each group of frames; with at most ``G`` frames it changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

NUM_STAGES = 4  # res2..res5


def group_count(frames: int, group_frames: int) -> int:
    """Groups in ``frames`` frames (1 when grouping is off or they fit in one group).

    Raises:
        ValueError: more than ``group_frames`` frames that do not split into whole groups (the
            release asserts the same).
    """
    if group_frames <= 0 or frames <= group_frames:
        return 1
    if frames % group_frames:
        raise ValueError(
            f"NLBlockND: {frames} frames do not split into groups of {group_frames} "
            "(group_frames; the clip length must be a multiple of the groups)"
        )
    return frames // group_frames


def to_groups(x: Tensor, groups: int) -> Tensor:
    """``(N, C, k * G, H, W) -> (N * k, C, G, H, W)``: group ``i`` of sample ``n`` is item
    ``n * k + i`` (the release's order)."""
    n, c, t, h, w = x.shape
    # (N, C, k, G, H, W) -> (N, k, C, G, H, W) -> (N * k, C, G, H, W)
    return (
        x.reshape(n, c, groups, t // groups, h, w).transpose(1, 2).reshape(-1, c, t // groups, h, w)
    )


def from_groups(x: Tensor, groups: int) -> Tensor:
    """Inverse of ``to_groups``: ``(N * k, C, G, H, W) -> (N, C, k * G, H, W)``."""
    nk, c, g, h, w = x.shape
    # (N, k, C, G, H, W) -> (N, C, k, G, H, W) -> (N, C, k * G, H, W)
    return (
        x.reshape(nk // groups, groups, c, g, h, w).transpose(1, 2).reshape(-1, c, groups * g, h, w)
    )


def block_diagonal(attention: Tensor, groups: int) -> Tensor:
    """Per-group attention ``(N * k, Lg, Mg)`` as the whole clip's ``(N, k * Lg, k * Mg)``: zero
    between groups (queries and keys are time-major, so each group's are contiguous)."""
    nk, lg, mg = attention.shape
    per_group = attention.reshape(nk // groups, groups, lg, mg)  # (N * k, Lg, Mg) -> (N, k, ...)
    out = attention.new_zeros(nk // groups, groups * lg, groups * mg)
    for i in range(groups):
        out[:, i * lg : (i + 1) * lg, i * mg : (i + 1) * mg] = per_group[:, i]
    return out


def check_group_frames(group_frames: Sequence[int] | None) -> tuple[int, ...]:
    """Per-stage (res2..res5) frames per Non-local group, 0 = all frames; None = all off.

    Raises:
        ValueError: not four non-negative ints.
    """
    if group_frames is None:
        return (0,) * NUM_STAGES
    values = tuple(group_frames) if not isinstance(group_frames, str | bytes) else ()
    if len(values) != NUM_STAGES or any(type(v) is not int or v < 0 for v in values):
        raise ValueError(
            f"nl_group_frames must be {NUM_STAGES} non-negative ints (res2..res5 frames per "
            f"Non-local group, 0 = all frames), got {group_frames!r}"
        )
    return values
