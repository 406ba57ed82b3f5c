"""Caffe2 ``.pkl`` weights: the paper's release (video-nonlocal-net) and PySlowFast's
``Kinetics/c2`` zoo.

A Python-2 pickle (read with the restricted unpickler) of ``{"blobs": {name: ndarray}}`` or a
bare dict, as ``lib/utils/checkpoints.py::save_model_params`` writes it; it also holds
``<param>_momentum``, ``lr`` and ``model_iter`` (skipped). Blob names (``resnet_video.py``,
``resnet_helper.py``, ``nonlocal_helper.py``): ``conv1_w``, ``res_conv1_bn_{s,b,rm,riv}``,
``res{2..5}_{i}_branch2{a,b,c}_w`` + ``_bn_{s,b,rm,riv}``, ``res{s}_{i}_branch1_w`` + ``_bn_*``,
``nonlocal_conv{3,4}_{i}_{theta,phi,g,out}_{w,b}`` + ``nonlocal_conv{3,4}_{i}_bn_*`` (``i`` = the
residual block it follows), ``pred_w`` / ``pred_b``; ``riv`` is the running variance. Caffe2
3-D conv weights are (out, in, T, H, W) like ours. The Non-local block pools before phi/g and
scales by ``dim_inner ** -0.5`` (``NONLOCAL.USE_SCALE``), as PySlowFast's.

Frozen-BN ("affine") releases (``MODEL.USE_AFFINE``, made by ``convert_to_finetune.py``) hold
only ``_bn_s`` / ``_bn_b`` with the statistics folded in, and their Non-local blocks have no BN
(``NONLOCAL.USE_BN: False``): they load exactly into our BNs with mean 0 and variance
``1 - eps`` (and an identity BN in the Non-local blocks). Such a model must be fine-tuned with
BN frozen, as the paper did.

The network a file needs (``model_options``, applied by the pipeline before the model is built
and checked by the loader): the Non-local semantics above; the release's stem max-pool without
padding (``resnet_video.py`` and ``resnet_video_org.py``: ``pool1`` pads 0; PySlowFast's layout
pads 1); and for frozen-BN files with res3 Non-local blocks, attention within groups of 4 res3
frames (``res_stage_nonlocal_group(..., group_size=4)`` when ``USE_AFFINE``; see
``nlvideo.models.nl_groups``; facebookresearch/video-nonlocal-net@c253ed5). PySlowFast's
``Kinetics/c2`` files hold the same blobs; ``slowfast_c2`` reads them into PySlowFast's network.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from nlvideo.models.pretrained.slowfast_pyth import HEAD, NL_SOFTMAX, STAGE_BLOCK
from nlvideo.models.pretrained.source import Source
from nlvideo.models.pretrained.weights import Reader, Weights, rows_of

logger = logging.getLogger(__name__)

SKIPPED = re.compile(r".*_momentum|lr|model_iter")  # solver state in the same dict
_BN = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
_NL = {"theta": "theta", "phi": "phi", "g": "g", "out": "out_conv"}
_W = {"w": "weight", "b": "bias"}
_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"conv1_w"), lambda m: "blocks.0.conv.weight"),
    (re.compile(r"res_conv1_bn_(s|b|rm|riv)"), lambda m: f"blocks.0.norm.{_BN[m[1]]}"),
    (
        re.compile(r"res([2-5])_(\d+)_branch2([abc])_w"),
        lambda m: f"blocks.{STAGE_BLOCK[m[1]]}.res_blocks.{m[2]}.branch2.conv_{m[3]}.weight",
    ),
    (
        re.compile(r"res([2-5])_(\d+)_branch2([abc])_bn_(s|b|rm|riv)"),
        lambda m: f"blocks.{STAGE_BLOCK[m[1]]}.res_blocks.{m[2]}.branch2.norm_{m[3]}.{_BN[m[4]]}",
    ),
    (
        re.compile(r"res([2-5])_(\d+)_branch1_w"),
        lambda m: f"blocks.{STAGE_BLOCK[m[1]]}.res_blocks.{m[2]}.branch1_conv.weight",
    ),
    (
        re.compile(r"res([2-5])_(\d+)_branch1_bn_(s|b|rm|riv)"),
        lambda m: f"blocks.{STAGE_BLOCK[m[1]]}.res_blocks.{m[2]}.branch1_norm.{_BN[m[3]]}",
    ),
    (
        re.compile(r"nonlocal_conv([2-5])_(\d+)_(theta|phi|g|out)_(w|b)"),
        lambda m: f"blocks.{STAGE_BLOCK[m[1]]}.non_local.{m[2]}.{_NL[m[3]]}.{_W[m[4]]}",
    ),
    (
        re.compile(r"nonlocal_conv([2-5])_(\d+)_bn_(s|b|rm|riv)"),
        lambda m: f"blocks.{STAGE_BLOCK[m[1]]}.non_local.{m[2]}.out_norm.{_BN[m[3]]}",
    ),
    (re.compile(r"pred_(w|b)"), lambda m: f"{HEAD}.{_W[m[1]]}"),
]


_BLOCK_STAGE = {str(v): k for k, v in STAGE_BLOCK.items()}  # VideoResNet.blocks index -> res
_BN_INV = {v: k for k, v in _BN.items()}
_W_INV = {v: k for k, v in _W.items()}
_NL_INV = {v: k for k, v in _NL.items()}
_INVERSE: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"blocks\.0\.conv\.weight"), lambda m: "conv1_w"),
    (re.compile(r"blocks\.0\.norm\.(\w+)"), lambda m: f"res_conv1_bn_{_BN_INV.get(m[1], m[1])}"),
    (
        re.compile(r"blocks\.(\d)\.res_blocks\.(\d+)\.branch2\.conv_([abc])\.weight"),
        lambda m: f"res{_BLOCK_STAGE[m[1]]}_{m[2]}_branch2{m[3]}_w",
    ),
    (
        re.compile(r"blocks\.(\d)\.res_blocks\.(\d+)\.branch2\.norm_([abc])\.(\w+)"),
        lambda m: f"res{_BLOCK_STAGE[m[1]]}_{m[2]}_branch2{m[3]}_bn_{_BN_INV.get(m[4], m[4])}",
    ),
    (
        re.compile(r"blocks\.(\d)\.res_blocks\.(\d+)\.branch1_conv\.weight"),
        lambda m: f"res{_BLOCK_STAGE[m[1]]}_{m[2]}_branch1_w",
    ),
    (
        re.compile(r"blocks\.(\d)\.res_blocks\.(\d+)\.branch1_norm\.(\w+)"),
        lambda m: f"res{_BLOCK_STAGE[m[1]]}_{m[2]}_branch1_bn_{_BN_INV.get(m[3], m[3])}",
    ),
    (
        re.compile(r"blocks\.(\d)\.non_local\.(\d+)\.(theta|phi|g|out_conv)\.(weight|bias)"),
        lambda m: f"nonlocal_conv{_BLOCK_STAGE[m[1]]}_{m[2]}_{_NL_INV[m[3]]}_{_W_INV[m[4]]}",
    ),
    (
        re.compile(r"blocks\.(\d)\.non_local\.(\d+)\.out_norm\.(\w+)"),
        lambda m: f"nonlocal_conv{_BLOCK_STAGE[m[1]]}_{m[2]}_bn_{_BN_INV.get(m[3], m[3])}",
    ),
    (re.compile(r"blocks\.6\.proj\.(weight|bias)"), lambda m: f"pred_{_W_INV[m[1]]}"),
]


def ours_to_caffe2(key: str) -> str:
    """The blob name a Caffe2 file would give our tensor ``key`` (``key`` if none)."""
    for pattern, rename in _INVERSE:
        m = pattern.fullmatch(key)
        if m:
            try:
                return rename(m)
            except KeyError:  # e.g. a stage index that is not res2..res5
                return key
    return key


def caffe2_to_ours(name: str) -> str:
    """Our name for a Caffe2 blob (unknown names come back unchanged: reported unexpected)."""
    for pattern, rename in _PATTERNS:
        m = pattern.fullmatch(name)
        if m:
            return rename(m)
    return name


def blobs_of(source: Source) -> dict | None:
    """The blob dict of a Caffe2 pickle (``{"blobs": ...}`` or bare), else None."""
    content = source.content
    if source.kind != "pickle" or not isinstance(content, dict):
        return None
    blobs = content.get("blobs", content)
    return blobs if isinstance(blobs, dict) else None


def _matches(source: Source) -> bool:
    blobs = blobs_of(source)
    return blobs is not None and any(isinstance(k, str) and caffe2_to_ours(k) != k for k in blobs)


def _convert(source: Source, model: nn.Module) -> Weights:
    blobs = blobs_of(source)
    if blobs is None:
        raise ValueError(f"model.pretrained: {source.path} is not a pickle of Caffe2 blobs")
    weights = Weights(tensors={}, file_name=ours_to_caffe2)
    not_arrays = []
    for name, value in blobs.items():
        if not isinstance(name, str) or SKIPPED.fullmatch(name):
            weights.ignored.append(str(name))
            continue
        if not isinstance(value, np.ndarray):
            not_arrays.append(name)
            continue
        ours = caffe2_to_ours(name)
        if ours == f"{HEAD}.weight" and value.ndim > 2 and set(value.shape[2:]) == {1}:
            value = value.reshape(value.shape[:2])  # the test net's 1x1x1 conv "pred"
        weights.tensors[ours] = torch.from_numpy(np.array(value))
        if ours != name:
            weights.origin[ours] = name
    if not_arrays:
        raise ValueError(
            f"model.pretrained: {source.path}: blobs that are not arrays: {not_arrays}"
        )
    if _frozen_bn(blobs):
        _fill_frozen_bn(weights, model)
    return weights


def _frozen_bn(blobs: dict) -> bool:
    """A frozen-BN ("affine") file: BN scale and shift only, no statistics."""
    return not any(isinstance(k, str) and k.endswith(("_bn_rm", "_bn_riv")) for k in blobs)


def _fill_frozen_bn(weights: Weights, model: nn.Module) -> None:
    """Statistics of a frozen-BN release: mean 0, variance ``1 - eps`` (so BN = x * s + b), and
    an identity BN for Non-local blocks without one."""
    t = weights.tensors
    for name, bn in model.named_modules():
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
            continue
        if f"{name}.weight" not in t and name.endswith(".out_norm"):
            if f"{name[: -len('out_norm')]}out_conv.weight" not in t:
                continue
            t[f"{name}.weight"] = torch.ones_like(bn.weight.detach())
            t[f"{name}.bias"] = torch.zeros_like(bn.bias.detach())
            weights.notes[f"{name}.weight"] = "no BN in the file's Non-local block: identity"
        if f"{name}.weight" in t and f"{name}.running_mean" not in t:
            t[f"{name}.running_mean"] = torch.zeros_like(bn.running_mean)
            t[f"{name}.running_var"] = torch.ones_like(bn.running_var) - bn.eps
            weights.notes[f"{name}.running_var"] = "frozen BN: mean 0, variance 1 - eps"


RES3_GROUP_FRAMES = 4  # the release's group_size for frozen-BN res3 Non-local blocks


def _model_options(source: Source) -> dict:
    """The release's network: Non-local semantics, unpadded stem pool, res3 NL groups."""
    blobs = blobs_of(source) or {}
    res3_nl = any(isinstance(k, str) and k.startswith("nonlocal_conv3_") for k in blobs)
    res3 = RES3_GROUP_FRAMES if res3_nl and _frozen_bn(blobs) else 0
    return {**NL_SOFTMAX, "stem_pool_pad": 0, "nl_group_frames": [0, res3, 0, 0]}


def _num_classes(source: Source) -> int | None:
    return rows_of(blobs_of(source), "pred_w")


READER = Reader("caffe2", _matches, _convert, _model_options, _num_classes)
