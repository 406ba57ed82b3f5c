"""Shared by the pretrained-weights tests: random weights and float64 logits."""

from __future__ import annotations

import torch
from torch import nn

CLIP = (1, 3, 8, 64, 64)  # cheap; res5 is 4x2x2 there


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights *and* BN statistics, so that eval-mode outputs depend on every tensor."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.2 - 0.1)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            elif isinstance(m, nn.Conv3d | nn.Linear) and m.bias is not None:
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.2 - 0.1)
    return model.eval()


def logits64(model: nn.Module, seed: int = 1, shape: tuple[int, ...] = CLIP) -> torch.Tensor:
    """Eval-mode logits in float64 on a fixed random clip."""
    clip = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        return model.double().eval()(clip)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()
