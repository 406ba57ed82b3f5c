"""Intra-op threads of a CPU run: the cores left over by the data workers.

Loader workers decode on cores of their own; a training process that also asks for every core
makes its intra-op threads wait for the core a worker holds. On the 2-core machine of the
built-in job, 1 thread beside 1 worker trained at 132-140 clips/s, 2 threads at 72-76.
"""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_cpu_threads(cores: int, num_workers: int, world_size: int = 1) -> int:
    """Each rank's share of ``cores`` minus its ``num_workers`` loader workers, at least 1."""
    return max(1, cores // max(1, world_size) - num_workers)


def set_cpu_threads(requested: int, num_workers: int, world_size: int = 1) -> int:
    """Set torch's intra-op threads for a CPU run and return the count.

    Args:
        requested: > 0: that many; 0: ``auto_cpu_threads`` of the available cores, unless
            ``OMP_NUM_THREADS`` is set (the user's choice, left as torch read it).
        num_workers: DataLoader worker processes of this rank.
        world_size: processes sharing the machine's cores.
    """
    if requested > 0:
        threads = requested
    elif os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    else:
        threads = auto_cpu_threads(available_cores(), num_workers, world_size)
    torch.set_num_threads(threads)
    logger.info("CPU run: %d intra-op thread(s) beside %d loader worker(s)", threads, num_workers)
    return threads
