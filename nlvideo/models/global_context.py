"""Global-context block (Cao et al., "GCNet", arXiv 1904.11492): query-independent attention.

A control for the Non-local block: it attends over all positions too, but with **one**
attention map shared by every query, so every position receives the same context vector::

    a = softmax_j(W_k x_j)                      # one weight per position, (N, THW)
    c = sum_j a_j x_j                           # context, (N, C)
    z_i = x_i + W_2 ReLU(LN(W_1 c))             # the same vector added at every position i

GCNet found Non-local maps nearly query-independent on standard tasks; a task that this block
solves as well as the Non-local block does not need pairwise relations. ``W_2`` starts at
zero, so a new block is exactly the identity (as the Non-local block with its zero-init BN).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GlobalContextBlock(nn.Module):
    """GCNet block for (N, C, *S) inputs of any spatial rank; a new block is the identity.

    Args:
        in_channels: Channels of the input (and output).
        inter_channels: Bottleneck width of the transform; defaults to ``in_channels // 2``
            (the Non-local block's ``inter_channels``; GCNet uses ``in_channels // 16``).
    """

    def __init__(self, in_channels: int, inter_channels: int | None = None) -> None:
        super().__init__()
        if not isinstance(in_channels, int) or in_channels <= 0:
            raise ValueError(
                f"GlobalContextBlock: in_channels expected a positive int, got {in_channels!r}"
            )
        inter_channels = inter_channels or max(in_channels // 2, 1)
        self.in_channels = in_channels
        self.inter_channels = inter_channels
        self.key = nn.Linear(in_channels, 1)  # W_k: a 1x1x1 conv to one channel
        self.transform = nn.Sequential(
            nn.Linear(in_channels, inter_channels),
            nn.LayerNorm(inter_channels),
            nn.ReLU(inplace=True),
            nn.Linear(inter_channels, in_channels),
        )
        nn.init.zeros_(self.transform[-1].weight)
        nn.init.zeros_(self.transform[-1].bias)

    def attention(self, x: Tensor) -> Tensor:
        """The shared attention map ``(N, prod(S))``: the same for every query position."""
        if x.dim() < 3 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"GlobalContextBlock: expected (N, {self.in_channels}, ...) input, "
                f"got shape {tuple(x.shape)}"
            )
        tokens = x.flatten(2).transpose(1, 2)  # (N, C, *S) -> (N, L, C)
        return self.key(tokens).squeeze(-1).softmax(dim=-1)  # (N, L, 1) -> (N, L)

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``x + transform(context)`` broadcast over all positions."""
        weights = self.attention(x)
        # (N, C, L) x (N, L, 1) -> (N, C, 1) -> (N, C)
        context = torch.bmm(x.flatten(2), weights.unsqueeze(-1)).squeeze(-1)
        delta = self.transform(context)  # (N, C)
        return x + delta.view(*delta.shape, *([1] * (x.dim() - 2)))
