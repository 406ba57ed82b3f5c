"""Precise BatchNorm statistics: re-estimate running mean / var over N training batches.

During training each BN layer's running statistics are an exponential moving average over
batches seen by ever-changing weights. Both references (PySlowFast ``BN.USE_PRECISE_STATS``,
video-nonlocal-net ``TRAIN.COMPUTE_PRECISE_BN``) replace them before each evaluation by
statistics of the current weights over 200 training batches. We do it as fvcore's
``update_bn_stats`` (which PySlowFast calls): every batch sets the layer's running statistics to
its own (momentum 1), and those are averaged exactly (cumulative mean), so the result is the
mean of the per-batch means and of the per-batch (unbiased) variances. Under DDP the per-rank
averages are then averaged over ranks (equal batch counts), so every rank, and the checkpoint
written after the evaluation, holds the same statistics.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from nlvideo.data.transforms import TrainTransform, prefetch
from nlvideo.engine.distributed import DistInfo
from nlvideo.engine.precision import autocast

logger = logging.getLogger(__name__)


def bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """BatchNorm (and SyncBatchNorm) layers that keep running statistics."""
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


@torch.no_grad()
def update_bn_stats(
    model: nn.Module,
    clips: Iterable[Tensor],
    num_batches: int,
    *,
    amp: str = "none",
    distributed: bool = False,
) -> int:
    """Set every BN layer's running mean / var to their exact average over ``num_batches``.

    Args:
        model: The network; run in training mode (without gradients) and restored afterwards.
        clips: Model-ready training clips, one tensor per batch; the first ``num_batches`` used.
        num_batches: How many batches to average over.
        amp: Autocast mode of the forward passes ("none", "bf16", "fp16").
        distributed: Average the result over the ranks of the process group (all ranks must
            call this with the same number of batches).

    Returns:
        The number of batches used (fewer than ``num_batches`` when ``clips`` runs out).

    Raises:
        ValueError: ``clips`` yields no batch.
    """
    layers = bn_layers(model)
    if not layers:
        return 0
    momenta = [bn.momentum for bn in layers]
    means = [torch.zeros_like(bn.running_mean) for bn in layers]
    variances = [torch.zeros_like(bn.running_var) for bn in layers]
    was_training = model.training
    model.train()
    for bn in layers:
        bn.momentum = 1.0  # running statistics := this batch's
    used = 0
    try:
        for batch in itertools.islice(clips, num_batches):
            with autocast(batch.device, amp):
                model(batch)
            used += 1
            for bn, mean, var in zip(layers, means, variances, strict=True):
                mean += (bn.running_mean - mean) / used
                var += (bn.running_var - var) / used
    finally:
        for bn, momentum in zip(layers, momenta, strict=True):
            bn.momentum = momentum
        model.train(was_training)
    if used == 0:
        raise ValueError("precise BN: no training batch to estimate statistics from")
    if distributed and dist.is_available() and dist.is_initialized():
        stats = means + variances
        flat = torch.cat([t.flatten() for t in stats])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= dist.get_world_size()
        for t, part in zip(stats, flat.split([t.numel() for t in stats]), strict=True):
            t.copy_(part.view_as(t))
    for bn, mean, var in zip(layers, means, variances, strict=True):
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
    return used


class PreciseBN:
    """Run before each evaluation: ``update_bn_stats`` on batches of a training loader.

    The batches depend only on (seed, epoch, rank): the loader's sampler and the transform's
    generator are seeded from them, and the global RNG states (dropout, worker seeds) are left
    as they were, so training and resuming are unaffected.

    Args:
        loader: Training clips (a loader of its own, built like the training loader); None
            when ``num_batches`` is 0.
        transform: Training augmentation (its own instance: its generator is re-seeded here).
        num_batches: Batches to average over (``train.precise_bn_batches``); 0 = do nothing.
        info: This process's place in the job (device, rank, distributed).
        amp: Autocast mode of the forward passes.
        seed: ``train.seed``.
    """

    def __init__(
        self,
        loader: DataLoader | None,
        transform: TrainTransform,
        num_batches: int,
        info: DistInfo,
        amp: str = "none",
        seed: int = 0,
    ) -> None:
        self.loader, self.transform, self.num_batches = loader, transform, num_batches
        self.info, self.amp, self.seed = info, amp, seed

    def __call__(self, model: nn.Module, epoch: int) -> nn.Module:
        """Updates ``model``'s BN statistics (if ``num_batches``) and returns it."""
        if not self.num_batches or self.loader is None:
            return model
        info = self.info
        self.loader.sampler.set_epoch(epoch)
        state = np.random.SeedSequence([self.seed, epoch, info.rank, 1]).generate_state(1)[0]
        self.transform.generator.manual_seed(int(state))
        cuda = [info.device] if info.device.type == "cuda" else []
        batches = prefetch(self.loader, info.device, self.transform)
        try:
            with torch.random.fork_rng(devices=cuda):
                clips = (batch.clips for batch in batches)
                used = update_bn_stats(
                    model, clips, self.num_batches, amp=self.amp, distributed=info.distributed
                )
        finally:
            batches.close()  # stops the loader's workers now, not at garbage collection
        logger.info(
            "precise BN: statistics of %d layers over %d batches", len(bn_layers(model)), used
        )
        return model
