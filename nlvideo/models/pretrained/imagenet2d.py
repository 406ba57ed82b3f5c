"""torchvision 2-D ImageNet ResNets, inflated to 3-D (the paper's initialisation).

A 2-D kernel ``w`` becomes ``w`` repeated over the ``T`` temporal taps and divided by ``T``
(Carreira & Zisserman 2017), so on a clip that is constant in time every conv gives the 2-D
result; BatchNorm is copied. The fc layer (ImageNet classes) is ignored; the head and the
Non-local blocks are not in such a file and keep their initialisation. Depths must match.
"""

from __future__ import annotations

import re

from torch import nn

from nlvideo.models.pretrained.source import Source
from nlvideo.models.pretrained.weights import Reader, Weights, keys_of, tensor_dict

_BLOCK = re.compile(r"layer([1-4])\.(\d+)\.(conv[123]|bn[123]|downsample\.[01])\.(\w+)")
_PARTS = {
    "conv1": "branch2.conv_a",
    "bn1": "branch2.norm_a",
    "conv2": "branch2.conv_b",
    "bn2": "branch2.norm_b",
    "conv3": "branch2.conv_c",
    "bn3": "branch2.norm_c",
    "downsample.0": "branch1_conv",
    "downsample.1": "branch1_norm",
}
_TRUNK = re.compile(r"blocks\.[0-5]\.(?!non_local\.)")  # what a 2-D ResNet file initialises


def torchvision_to_ours(key: str) -> str:
    """Our trunk name for a torchvision ResNet key (others come back unchanged)."""
    stem = re.fullmatch(r"(conv1|bn1)\.(\w+)", key)
    if stem:
        return f"blocks.0.{'conv' if stem[1] == 'conv1' else 'norm'}.{stem[2]}"
    m = _BLOCK.fullmatch(key)
    if m:
        stage = (1, 3, 4, 5)[int(m[1]) - 1]
        return f"blocks.{stage}.res_blocks.{m[2]}.{_PARTS[m[3]]}.{m[4]}"
    return key


def _matches(source: Source) -> bool:
    keys = keys_of(source)
    return "conv1.weight" in keys and any(k.startswith("layer1.") for k in keys)


def _convert(source: Source, model: nn.Module) -> Weights:
    own = model.state_dict()
    weights = Weights(tensors={})
    for key, w in tensor_dict(source).items():
        if key.startswith("fc."):
            weights.ignored.append(key)
            continue
        target = torchvision_to_ours(key)
        dst = own.get(target)
        if dst is not None and w.dim() == 4 and dst.dim() == 5:
            t = dst.shape[2]
            # (O, I, kH, kW) -> (O, I, T, kH, kW), each tap w / T
            w = (w.unsqueeze(2).expand(-1, -1, t, -1, -1) / t).contiguous()
            weights.notes[target] = f"inflated over {t} frames"
        weights.tensors[target] = w
        if target != key:
            weights.origin[target] = key
    weights.fresh = {k for k in own if not _TRUNK.match(k)}
    return weights


READER = Reader("imagenet2d", _matches, _convert)
