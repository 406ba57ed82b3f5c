"""An epoch's training batches, from any position: what lets a mid-epoch resume skip ahead.

Sample order (the sampler, seeded by seed + epoch), clip windows (the dataset, seeded by
(seed, epoch, index)) and augmentation (``BatchSeededTransform``: re-seeded by (seed, epoch,
rank, batch)) depend only on where a batch sits in the epoch, so a resumed run starts at its
checkpoint's batch without decoding the batches before it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from nlvideo.data.transforms import DeviceBatch, prefetch
from nlvideo.engine.checkpoint import restore_rng_state


class BatchSeededTransform:
    """A train transform whose generator is re-seeded before every batch.

    Args:
        transform: The transform (its ``generator`` is re-seeded; other attributes pass through).
        seed: Run seed.
        epoch: Epoch index.
        rank: Process rank.
        start: Index in the epoch of the first batch it will see.
    """

    def __init__(self, transform: Any, *, seed: int, epoch: int, rank: int, start: int) -> None:
        self.transform, self.key, self.batch = transform, (seed, epoch, rank), start

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transform, name)

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        generator = getattr(self.transform, "generator", None)
        if generator is not None:
            state = np.random.SeedSequence([*self.key, self.batch]).generate_state(1)[0]
            generator.manual_seed(int(state))
        self.batch += 1
        return self.transform(clips)


def epoch_batches(
    loader: DataLoader,
    device: torch.device,
    transform: Any,
    *,
    seed: int,
    epoch: int,
    rank: int,
    start: int = 0,
    rng_state: dict[str, Any] | None = None,
) -> Iterator[DeviceBatch]:
    """Device batches of ``epoch`` from batch ``start`` on; restores ``rng_state`` (if given)
    where the uninterrupted run had it: at the epoch's start, or after the loader's iterator
    drew its seed for a mid-epoch start.

    Args:
        loader: The training loader; its sampler needs ``set_epoch`` and ``set_start``.
        device: Where batches go.
        transform: The train transform (re-seeded per batch, see ``BatchSeededTransform``).
        seed: Run seed.
        epoch: Epoch index.
        rank: Process rank.
        start: Batches of this epoch already done.
        rng_state: Global RNG states of a checkpoint (``capture_rng_state``), or None.
    """
    sampler: Any = loader.sampler
    sampler.set_epoch(epoch)
    sampler.set_start(start * (loader.batch_size or 1))
    seeded = BatchSeededTransform(transform, seed=seed, epoch=epoch, rank=rank, start=start)
    if start >= len(loader):  # stopped after the epoch's last step
        if rng_state is not None:
            restore_rng_state(rng_state)
        return iter(())
    if rng_state is not None and start == 0:
        restore_rng_state(rng_state)
        rng_state = None
    batches = prefetch(loader, device, seeded)
    if rng_state is None:
        return batches
    first = next(batches)  # the loader's iterator draws its base seed from the global RNG
    restore_rng_state(rng_state)
    return itertools.chain([first], batches)
