"""PySlowFast ``.pyth`` checkpoints (``C2D_8x8_R50``, ``I3D_8x8_R50``, ``I3D_NLN_8x8_R50``).

Names, from slowfast/models/{video_model_builder,stem_helper,resnet_helper,nonlocal_helper,
head_helper}.py: ``s1.pathway0_stem.{conv,bn}``, ``s2..s5.pathway0_res{i}.{branch1,branch1_bn,
branch2.{a,a_bn,b,b_bn,c,c_bn}}``, ``s{3,4}.pathway0_nonlocal{i}.{conv_theta,conv_phi,conv_g,
conv_out,bn}`` (``i`` = the residual block it follows) and ``head.projection``. PySlowFast's
Non-local block (``NONLOCAL.INSTANTIATION: softmax``) pools the input before phi/g and scales
the logits by ``dim_inner ** -0.5``: its checkpoints set ``nl_pool_first`` and
``nl_scale_logits``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from torch import Tensor, nn

from nlvideo.models.pretrained.source import Source
from nlvideo.models.pretrained.weights import (
    HEAD,
    Reader,
    Weights,
    keys_of,
    rows_of,
    tensor_dict,
)

NL_SOFTMAX = {"nl_pool_first": True, "nl_scale_logits": True}  # PySlowFast/Caffe2 NL semantics
STAGE_BLOCK = {"2": 1, "3": 3, "4": 4, "5": 5}  # res2..res5 -> index in VideoResNet.blocks

_RES_PARTS = {
    "branch1": "branch1_conv",
    "branch1_bn": "branch1_norm",
    "branch2.a": "branch2.conv_a",
    "branch2.a_bn": "branch2.norm_a",
    "branch2.b": "branch2.conv_b",
    "branch2.b_bn": "branch2.norm_b",
    "branch2.c": "branch2.conv_c",
    "branch2.c_bn": "branch2.norm_c",
}
_NL_PARTS = {
    "conv_theta": "theta",
    "conv_phi": "phi",
    "conv_g": "g",
    "conv_out": "out_conv",
    "bn": "out_norm",
}
_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"s1\.pathway0_stem\.(conv|bn)\.(\w+)"),
        lambda m: f"blocks.0.{'conv' if m[1] == 'conv' else 'norm'}.{m[2]}",
    ),
    (
        re.compile(
            r"s([2-5])\.pathway0_res(\d+)\.(branch1|branch1_bn|branch2\.[abc](?:_bn)?)\.(\w+)"
        ),
        lambda m: f"blocks.{STAGE_BLOCK[m[1]]}.res_blocks.{m[2]}.{_RES_PARTS[m[3]]}.{m[4]}",
    ),
    (
        re.compile(
            r"s([2-5])\.pathway0_nonlocal(\d+)\.(conv_theta|conv_phi|conv_g|conv_out|bn)\.(\w+)"
        ),
        lambda m: f"blocks.{STAGE_BLOCK[m[1]]}.non_local.{m[2]}.{_NL_PARTS[m[3]]}.{m[4]}",
    ),
    (re.compile(r"head\.projection\.(weight|bias)"), lambda m: f"{HEAD}.{m[1]}"),
]


def slowfast_to_ours(key: str) -> str:
    """Our name for a PySlowFast single-pathway ResNet key (unknown keys come back unchanged,
    so that the strict loader reports them as unexpected)."""
    for pattern, rename in _PATTERNS:
        m = pattern.fullmatch(key)
        if m:
            return rename(m)
    return key


def renamed(state: dict[str, Tensor], to_ours: Callable[[str], str], path: str) -> Weights:
    """``state`` under our names, remembering the file's names of renamed keys."""
    weights = Weights(tensors={})
    for key, value in state.items():
        new = to_ours(key)
        if new in weights.tensors:
            raise ValueError(
                f"model.pretrained: {path}: {key!r} and {weights.origin.get(new, new)!r} "
                f"both map to {new!r}"
            )
        weights.tensors[new] = value
        if new != key:
            weights.origin[new] = key
    return weights


def _matches(source: Source) -> bool:
    return any(k.startswith(("s1.", "s2.", "head.projection")) for k in keys_of(source))


def _convert(source: Source, model: nn.Module) -> Weights:
    return renamed(tensor_dict(source), slowfast_to_ours, source.path)


def _num_classes(source: Source) -> int | None:
    return rows_of(tensor_dict(source), "head.projection.weight")


READER = Reader("slowfast", _matches, _convert, lambda source: dict(NL_SOFTMAX), _num_classes)
