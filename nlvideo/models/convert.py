"""Loading published weights into ``VideoResNet``: pytorchvideo and PySlowFast checkpoints, and
2-D ImageNet ResNets inflated to 3-D (the paper's initialisation).

Every loader checks keys strictly and raises ``CheckpointMismatchError`` listing the missing,
unexpected and wrongly shaped keys instead of loading part of a checkpoint silently.
PySlowFast Non-local checkpoints (``I3D_NLN_8x8_R50``) need a model built with
``nl_pool_first=True, nl_scale_logits=True`` (their "softmax" instantiation); the weights alone
cannot tell, so ``load_slowfast_checkpoint`` warns when the model's NL blocks differ.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from nlvideo.models.non_local import NLBlockND

logger = logging.getLogger(__name__)

StateDict = Mapping[str, Tensor]
_SHOW = 20  # keys listed per category in error messages


class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or shapes do not match the model."""

    def __init__(
        self,
        source: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        lines = [f"checkpoint {source} does not match the model:"]
        for title, items in (
            ("missing keys (in the model, not in the checkpoint)", missing),
            ("unexpected keys (in the checkpoint, not in the model)", unexpected),
            (
                "shape mismatches (key: checkpoint shape vs model shape)",
                [f"{k}: {list(a)} vs {list(b)}" for k, a, b in mismatched],
            ),
        ):
            if items:
                more = f" ... and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
                lines.append(f"  {len(items)} {title}: {', '.join(items[:_SHOW])}{more}")
        super().__init__("\n".join(lines))


def _read_state(path_or_state: str | os.PathLike | StateDict, wrappers: tuple[str, ...]) -> tuple:
    """Returns (state dict, description) from a file or an in-memory dict, unwrapping containers
    such as ``{"model_state": ...}`` and a DistributedDataParallel ``module.`` prefix."""
    if isinstance(path_or_state, str | os.PathLike):
        source = os.fspath(path_or_state)
        state = torch.load(source, map_location="cpu", weights_only=True)
    else:
        source, state = "<state dict>", path_or_state
    if not isinstance(state, Mapping):
        raise ValueError(f"{source}: expected a dict of tensors, got {type(state).__name__}")
    for key in wrappers:
        if key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(
            f"{source}: expected a state dict of tensors (or one under {list(wrappers)}), "
            f"found non-tensor entries {bad[:_SHOW]}"
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state), source


def _load_strict(
    model: nn.Module, state: StateDict, source: str, origin: Mapping[str, str] | None = None
) -> None:
    """Loads all of ``state`` or raises; ``origin`` maps renamed keys to the checkpoint's."""
    origin = origin or {}

    def named(key: str) -> str:
        return f"{key} (checkpoint: {origin[key]})" if origin.get(key, key) != key else key

    own = model.state_dict()
    missing = sorted(own.keys() - state.keys())
    unexpected = [named(k) for k in sorted(state.keys() - own.keys())]
    mismatched = [
        (named(k), tuple(state[k].shape), tuple(own[k].shape))
        for k in sorted(own.keys() & state.keys())
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(source, missing, unexpected, mismatched)
    model.load_state_dict(state, strict=True)


def load_pytorchvideo_checkpoint(
    model: nn.Module, path_or_state: str | os.PathLike | StateDict
) -> nn.Module:
    """Loads a pytorchvideo model-zoo checkpoint (``C2D_8x8_R50.pyth``, ``I3D_8x8_R50.pyth``).

    Our module names are pytorchvideo's, so the keys load unchanged into the matching
    non-NL model (``c2d_r50`` / ``i3d_r50``).
    """
    state, source = _read_state(path_or_state, ("model_state", "state_dict", "model"))
    _load_strict(model, state, source)
    logger.info("loaded pytorchvideo checkpoint %s (%d tensors)", source, len(state))
    return model


# --- PySlowFast ---------------------------------------------------------------------------------

_SF_STAGE = {"s2": 1, "s3": 3, "s4": 4, "s5": 5}  # PySlowFast stage module -> our blocks index
_SF_RES_PARTS = {
    "branch1": "branch1_conv",
    "branch1_bn": "branch1_norm",
    "branch2.a": "branch2.conv_a",
    "branch2.a_bn": "branch2.norm_a",
    "branch2.b": "branch2.conv_b",
    "branch2.b_bn": "branch2.norm_b",
    "branch2.c": "branch2.conv_c",
    "branch2.c_bn": "branch2.norm_c",
}
_SF_NL_PARTS = {
    "conv_theta": "theta",
    "conv_phi": "phi",
    "conv_g": "g",
    "conv_out": "out_conv",
    "bn": "out_norm",
}
_SF_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"s1\.pathway0_stem\.(conv|bn)\.(\w+)"),
        lambda m: f"blocks.0.{'conv' if m[1] == 'conv' else 'norm'}.{m[2]}",
    ),
    (
        re.compile(
            r"(s[2-5])\.pathway0_res(\d+)\.(branch1|branch1_bn|branch2\.[abc](?:_bn)?)\.(\w+)"
        ),
        lambda m: f"blocks.{_SF_STAGE[m[1]]}.res_blocks.{m[2]}.{_SF_RES_PARTS[m[3]]}.{m[4]}",
    ),
    (
        re.compile(
            r"(s[2-5])\.pathway0_nonlocal(\d+)\.(conv_theta|conv_phi|conv_g|conv_out|bn)\.(\w+)"
        ),
        lambda m: f"blocks.{_SF_STAGE[m[1]]}.non_local.{m[2]}.{_SF_NL_PARTS[m[3]]}.{m[4]}",
    ),
    (re.compile(r"head\.projection\.(weight|bias)"), lambda m: f"blocks.6.proj.{m[1]}"),
]


def _slowfast_key(key: str) -> str:
    for pattern, rename in _SF_PATTERNS:
        m = pattern.fullmatch(key)
        if m:
            return rename(m)
    return key


def convert_slowfast_state_dict(state: StateDict) -> dict[str, Tensor]:
    """Renames a PySlowFast single-pathway ResNet state dict (C2D/I3D/I3D_NLN) to our names.

    Keys that match no known PySlowFast name are passed through unchanged, so a strict load
    reports them as unexpected.
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        new = _slowfast_key(key)
        if new in out:
            raise ValueError(f"PySlowFast keys collide after renaming: {key!r} -> {new!r}")
        out[new] = value
    return out


def load_slowfast_checkpoint(
    model: nn.Module, path_or_state: str | os.PathLike | StateDict
) -> nn.Module:
    """Loads a PySlowFast ``.pyth`` checkpoint (C2D_8x8_R50, I3D_8x8_R50, I3D_NLN_8x8_R50).

    For NL checkpoints build the model with ``nl_pool_first=True, nl_scale_logits=True``.
    """
    state, source = _read_state(path_or_state, ("model_state", "state_dict", "model"))
    origin = {_slowfast_key(k): k for k in state}
    _load_strict(model, convert_slowfast_state_dict(state), source, origin)
    for name, module in model.named_modules():
        if isinstance(module, NLBlockND) and not (module.pool_first and module.scale_logits):
            logger.warning(
                "%s: NL block %s is not in PySlowFast mode (build the model with "
                "nl_pool_first=True, nl_scale_logits=True); its outputs will differ",
                source,
                name,
            )
            break
    logger.info("loaded PySlowFast checkpoint %s (%d tensors)", source, len(state))
    return model


# --- 2-D ImageNet ResNet -> 3-D -----------------------------------------------------------------

_TV_BLOCK = re.compile(r"layer([1-4])\.(\d+)\.(conv[123]|bn[123]|downsample\.[01])\.(\w+)")
_TV_PARTS = {
    "conv1": "branch2.conv_a",
    "bn1": "branch2.norm_a",
    "conv2": "branch2.conv_b",
    "bn2": "branch2.norm_b",
    "conv3": "branch2.conv_c",
    "bn3": "branch2.norm_c",
    "downsample.0": "branch1_conv",
    "downsample.1": "branch1_norm",
}


def _torchvision_to_ours(key: str) -> str | None:
    """Maps a torchvision ResNet key to our trunk key (None for keys we do not use)."""
    stem = re.fullmatch(r"(conv1|bn1)\.(\w+)", key)
    if stem:
        return f"blocks.0.{'conv' if stem[1] == 'conv1' else 'norm'}.{stem[2]}"
    m = _TV_BLOCK.fullmatch(key)
    if m:
        stage = (1, 3, 4, 5)[int(m[1]) - 1]
        return f"blocks.{stage}.res_blocks.{m[2]}.{_TV_PARTS[m[3]]}.{m[4]}"
    return None


@dataclass
class InflationReport:
    """What ``inflate_resnet2d`` did."""

    inflated: list[str] = field(default_factory=list)  # our conv weights built from 2-D ones
    copied: list[str] = field(default_factory=list)  # our BN tensors copied as they are
    skipped_2d: list[str] = field(default_factory=list)  # 2-D keys not used (the fc classifier)
    kept_3d: list[str] = field(default_factory=list)  # our keys left at init (head, NL blocks)


def inflate_resnet2d(
    model3d: nn.Module, state_dict_2d: str | os.PathLike | StateDict
) -> InflationReport:
    """Initialises a C2D/I3D trunk from a torchvision ImageNet ResNet-50/101 state dict.

    A 2-D kernel ``w`` becomes ``w`` repeated over the ``T`` temporal taps and divided by
    ``T`` (Carreira & Zisserman 2017), so on a clip that is constant in time every conv gives
    the 2-D result; BatchNorm is copied. The fc layer (ImageNet classes) is skipped; the head
    and NL blocks keep their initialisation. The 3-D depth must match the 2-D one.
    """
    state2d, source = _read_state(state_dict_2d, ("state_dict", "model"))
    own = model3d.state_dict()
    report = InflationReport()
    new_state: dict[str, Tensor] = {}
    unexpected, mismatched = [], []
    for key, w in state2d.items():
        target = _torchvision_to_ours(key)
        if target is None:
            (report.skipped_2d if key.startswith("fc.") else unexpected).append(key)
            continue
        if target not in own:
            unexpected.append(key)
            continue
        dst = own[target]
        if w.dim() == 4 and dst.dim() == 5:
            t = dst.shape[2]
            # (O, I, kH, kW) -> (O, I, T, kH, kW), each tap w / T
            w = w.unsqueeze(2).expand(-1, -1, t, -1, -1) / t
            report.inflated.append(target)
        else:
            report.copied.append(target)
        if w.shape != dst.shape:
            mismatched.append((key, tuple(w.shape), tuple(dst.shape)))
            continue
        new_state[target] = w.to(dst.dtype).contiguous()
    is_trunk = re.compile(r"blocks\.[0-5]\.(?!non_local\.)")
    missing = sorted(k for k in own if is_trunk.match(k) and k not in new_state)
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(source, missing, sorted(unexpected), mismatched)
    model3d.load_state_dict(new_state, strict=False)
    report.kept_3d = sorted(own.keys() - new_state.keys())
    logger.info(
        "inflated %s: %d conv kernels inflated, %d BN tensors copied, skipped %s, "
        "%d model tensors left at init (head, non-local)",
        source,
        len(report.inflated),
        len(report.copied),
        report.skipped_2d,
        len(report.kept_3d),
    )
    return report
