"""Freezing part of a network for fine-tuning: BatchNorm statistics, or the trunk up to a stage.

``freeze(model, "res4")`` freezes the stem and res2..res4 (their Non-local blocks included):
their parameters stop requiring gradients (so the optimiser, built afterwards, leaves them
out) and their BatchNorm layers become ``FrozenBatchNorm``, which normalises with the stored
statistics whatever ``model.train()`` says. ``freeze(model, "bn")`` does the latter for every
BatchNorm of the network (statistics and affine parameters), leaving the rest trainable.

``FrozenBatchNorm`` keeps BatchNorm's parameter and buffer names, so the state dict of a
frozen network loads into an unfrozen one (evaluation, inference) and back. It is not a
``_BatchNorm`` subclass, so ``SyncBatchNorm.convert_sync_batchnorm`` leaves it alone, and its
forward never depends on ``self.training``, so DDP and ``torch.compile`` see a constant op.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nlvideo.models.resnet3d import STAGE_BLOCK_INDEX

logger = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("stem", "res2", "res3", "res4", "res5")  # in network order
FREEZE_CHOICES: tuple[str, ...] = ("none", "bn", *STAGES)


class FrozenBatchNorm(nn.Module):
    """A BatchNorm layer turned into a fixed per-channel affine map (any 1-D/2-D/3-D input).

    Takes over the layer's own parameters (now ``requires_grad=False``) and buffers, so the
    state-dict keys are unchanged. Always normalises with the running statistics and never
    updates them; ``train()`` leaves it in eval mode.

    Args:
        bn: the BatchNorm layer to replace (with affine parameters and running statistics).

    Raises:
        ValueError: the layer keeps no running statistics or has no affine parameters.
    """

    def __init__(self, bn: _BatchNorm) -> None:
        super().__init__()
        if bn.running_mean is None or bn.running_var is None or bn.weight is None:
            raise ValueError(f"cannot freeze {bn}: it needs running statistics and affine=True")
        self.num_features, self.eps = bn.num_features, bn.eps
        self.weight, self.bias = bn.weight, bn.bias
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)
        self.register_buffer("running_mean", bn.running_mean)
        self.register_buffer("running_var", bn.running_var)
        self.register_buffer("num_batches_tracked", bn.num_batches_tracked)
        self.training = False

    def train(self, mode: bool = True) -> FrozenBatchNorm:
        """Stay in eval mode whatever ``mode`` is."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def model_parts(model: nn.Module) -> dict[str, nn.Module]:
    """The named parts of a ``VideoResNet``: stem, res2..res5 (with their NL blocks), head.

    The parameter-free temporal pool after res2 belongs to res2.

    Raises:
        TypeError: ``model`` does not have the ``VideoResNet`` block layout.
    """
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or len(blocks) != 7:
        raise TypeError(
            f"{type(model).__name__} does not have the VideoResNet layout "
            "(blocks: stem, res2, pool, res3, res4, res5, head)"
        )
    parts = {"stem": blocks[0]}
    parts.update({f"res{i + 2}": blocks[b] for i, b in enumerate(STAGE_BLOCK_INDEX)})
    parts["head"] = blocks[-1]
    return parts


def freeze_batchnorm(module: nn.Module) -> tuple[int, int]:
    """Replace every BatchNorm layer inside ``module`` by a ``FrozenBatchNorm``.

    Returns:
        How many layers were replaced, and how many of them have an all-zero scale (a
        zero-initialised residual or Non-local block that was never trained: the branch it
        closes then never learns).
    """
    targets = [
        (parent, name, child)
        for parent in module.modules()
        for name, child in parent.named_children()
        if isinstance(child, _BatchNorm)
    ]
    zero = 0
    for parent, name, child in targets:
        zero += int(not child.weight.detach().any())
        setattr(parent, name, FrozenBatchNorm(child))
    return len(targets), zero


def freeze(model: nn.Module, what: str) -> dict[str, tuple[int, int]]:
    """Freeze part of ``model`` (a ``VideoResNet``) before its optimiser is built; logs what.

    Args:
        model: the network, after its pretrained weights were loaded.
        what: "none", "bn" (every BatchNorm's statistics and affine parameters) or a stage
            ("stem", "res2" ... "res5"): that stage and everything before it. The head is
            never frozen.

    Returns:
        For each part (stem, res2..res5, head): (frozen, total) parameter counts; empty for
        "none", which leaves any network as it is.

    Raises:
        ValueError: ``what`` is not one of ``FREEZE_CHOICES``.
    """
    if what not in FREEZE_CHOICES:
        raise ValueError(f"freeze: expected one of {list(FREEZE_CHOICES)}, got {what!r}")
    if what == "none":
        return {}
    parts = model_parts(model)
    zero = 0
    if what == "bn":
        zero = freeze_batchnorm(model)[1]
    else:
        for name in STAGES[: STAGES.index(what) + 1]:
            for p in parts[name].parameters():
                p.requires_grad_(False)
            zero += freeze_batchnorm(parts[name])[1]
    if zero:
        logger.warning(
            "freeze=%s: %d frozen BatchNorm layers have an all-zero scale, so the blocks they "
            "close stay off (zero-initialised, never trained: freeze pretrained layers only)",
            what,
            zero,
        )
    counts = {
        name: (
            sum(p.numel() for p in part.parameters() if not p.requires_grad),
            sum(p.numel() for p in part.parameters()),
        )
        for name, part in parts.items()
    }
    frozen = sum(f for f, _ in counts.values())
    total = sum(t for _, t in counts.values())
    detail = ", ".join(f"{name} {f:,}/{t:,}" for name, (f, t) in counts.items())
    logger.info("freeze=%s: %s of %s parameters frozen (%s)", what, frozen, total, detail)
    return counts
