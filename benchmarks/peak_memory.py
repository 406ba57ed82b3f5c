"""Peak memory of one training step, as the model and Non-local benchmarks report it."""

from __future__ import annotations

from collections.abc import Callable

import torch


def peak_memory(step: Callable[[], None], device: torch.device) -> int:
    """Bytes allocated at the peak of one step (fwd+bwd), above what was allocated before it.

    On CUDA ``torch.cuda.max_memory_allocated``; on CPU the running maximum of the allocation
    events ``torch.profiler`` records with ``profile_memory=True`` (one extra, untimed step).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() == torch.autograd.DeviceType.CPU:
            current += event.nbytes()
            peak = max(peak, current)
    return peak
