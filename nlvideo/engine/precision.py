"""Mixed precision: which autocast a run uses on its device, as one context manager."""

from __future__ import annotations

import contextlib

import torch

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _checked(amp: str) -> str:
    if amp != "none" and amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of none, bf16, fp16; got {amp!r}")
    return amp


def effective_amp(amp: str, device: torch.device) -> str:
    """The autocast mode used on ``device``: ``amp`` on CUDA, "none" elsewhere."""
    amp = _checked(amp)  # a bad value is an error on every device
    return amp if device.type == "cuda" else "none"


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for "bf16" / "fp16", a no-op for "none"."""
    if _checked(amp) == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])
