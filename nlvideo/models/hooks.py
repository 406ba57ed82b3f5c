"""Model-level access to Non-local blocks: find them, capture one's attention, export mode.

Example:
    >>> with capture_attention(model) as seen:  # the first res3 block by default
    ...     model(clips)
    >>> seen.attention.shape  # (N, L, M): queries x keys of that block
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nlvideo.models.non_local import NLBlockND

RES3_PREFIX = "blocks.3."  # VideoResNet (and pytorchvideo's hub ResNets): blocks.3 = res3


def non_local_blocks(model: nn.Module) -> dict[str, NLBlockND]:
    """Every Non-local block of ``model`` by module name (the names ``print(model)`` shows)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, NLBlockND)}


def default_block(model: nn.Module) -> str:
    """The first res3 Non-local block (the paper's Figure 3), else the first one.

    Raises:
        ValueError: the model has no Non-local block.
    """
    names = list(non_local_blocks(model))
    if not names:
        raise ValueError(f"{type(model).__name__} has no Non-local block")
    return next((n for n in names if n.startswith(RES3_PREFIX)), names[0])


def find_block(model: nn.Module, name: str | None = None) -> tuple[str, NLBlockND]:
    """The Non-local block called ``name`` (None: ``default_block``).

    Raises:
        ValueError: no such block; the message lists the valid names.
    """
    blocks = non_local_blocks(model)
    name = default_block(model) if name is None else name
    if name not in blocks:
        valid = ", ".join(blocks) or "none"
        raise ValueError(f"no Non-local block named {name!r}; valid names: {valid}")
    return name, blocks[name]


@dataclass
class AttentionCapture:
    """What one forward pass of a block showed; filled by ``capture_attention``."""

    name: str
    attention: Tensor | None = None  # (N, L, M) float32: queries (T*H*W) x keys (T'*H'*W')
    query_shape: tuple[int, ...] = ()  # (T, H, W) of the block's input = its queries
    key_shape: tuple[int, ...] = ()  # (T', H', W') of the sub-sampled keys
    response: Tensor | None = None  # (N, T, H, W): channel norm of what the block adds, z - x


@contextmanager
def capture_attention(model: nn.Module, name: str | None = None) -> Iterator[AttentionCapture]:
    """Record the attention of one Non-local block on the forward passes inside the ``with``.

    The block's output is unchanged; its attention is ``NLBlockND.attention`` of its input
    (equal to ``forward_reference``'s), kept from the last forward pass.

    Raises:
        ValueError: no such block; the message lists the valid names.
    """
    name, block = find_block(model, name)
    seen = AttentionCapture(name)

    def hook(module: NLBlockND, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        x = inputs[0]
        with torch.no_grad():
            seen.attention = module.attention(x).float()
            seen.query_shape = tuple(x.shape[2:])
            seen.key_shape = tuple(module.pool(x[:1, :1]).shape[2:])
            seen.response = (output - x).float().norm(dim=1)  # (N, C, T, H, W) -> (N, T, H, W)

    handle = block.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


@contextmanager
def export_mode(model: nn.Module) -> Iterator[list[str]]:
    """Switch every Non-local block to its exact, exportable path (``NLBlockND.exportable``).

    Yields:
        The names of the ``concatenate`` blocks, which then build their ``L x M`` affinity.
    """
    blocks = non_local_blocks(model)
    before = {name: b.exportable for name, b in blocks.items()}
    for b in blocks.values():
        b.exportable = True
    try:
        yield [name for name, b in blocks.items() if b.mode == "concatenate"]
    finally:
        for name, b in blocks.items():
            b.exportable = before[name]
