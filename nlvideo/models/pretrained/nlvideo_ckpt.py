"""nlvideo checkpoints (``runs/<name>/best.pt``): our names, our Non-local options."""

from __future__ import annotations

from typing import Any

from torch import nn

from nlvideo.models.pretrained.source import Source
from nlvideo.models.pretrained.weights import HEAD, Reader, Weights, rows_of

FORMAT = "nlvideo/1"  # the "format" entry of every nlvideo checkpoint
# Options that change what the same weights compute: they follow the checkpoint.
NL_OPTIONS = (
    "nl_mode",
    "nl_pool_first",
    "nl_scale_logits",
    "nl_sub_sample",
    "stem_pool_pad",
    "nl_group_frames",
)


def _matches(source: Source) -> bool:
    return isinstance(source.content, dict) and source.content.get("format") == FORMAT


def _convert(source: Source, model: nn.Module) -> Weights:
    weights = source.content.get("model")
    if not isinstance(weights, dict):
        raise ValueError(f"model.pretrained: {source.path} has no 'model' state dict")
    return Weights(tensors=dict(weights))


def _model_options(source: Source) -> dict[str, Any]:
    kwargs = source.content.get("model_kwargs") or {}
    return {k: kwargs[k] for k in NL_OPTIONS if k in kwargs}


def _num_classes(source: Source) -> int | None:
    weights = source.content.get("model")
    return rows_of(weights if isinstance(weights, dict) else None, f"{HEAD}.weight")


READER = Reader("nlvideo", _matches, _convert, _model_options, _num_classes)
