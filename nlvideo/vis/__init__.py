"""Visualisation of what Non-local blocks attend to (``nlvideo-attention``).

Example:
    >>> result = attention_maps(model, clip, k=20)  # first res3 block, strongest queries
    >>> save_attention(result, clip_frames(clip, mean, std), "out", "my_video")
"""

from __future__ import annotations

from nlvideo.vis.attention import AttentionResult, Point, attention_maps, clip_frames
from nlvideo.vis.draw import draw_attention, heatmap_frames, save_attention

__all__ = [
    "AttentionResult",
    "Point",
    "attention_maps",
    "clip_frames",
    "draw_attention",
    "heatmap_frames",
    "save_attention",
]
