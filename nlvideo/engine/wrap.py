"""The training model's wrappers: SyncBatchNorm, channels_last_3d, DDP and torch.compile."""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nlvideo.engine.distributed import DistInfo

logger = logging.getLogger(__name__)


def wrap_model(
    model: nn.Module, info: DistInfo, *, sync_bn: bool, channels_last: bool, compile: bool
) -> nn.Module:
    """``model`` on ``info.device``, wrapped as asked; GPU-only options are logged no-ops on CPU."""
    device, cuda = info.device, info.device.type == "cuda"
    if sync_bn and info.distributed:
        if cuda:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:  # torch's SyncBatchNorm runs on GPUs only
            logger.info("train.sync_bn ignored on %s (CUDA only)", device)
    model = model.to(device)
    if channels_last:
        if cuda:
            model = model.to(memory_format=torch.channels_last_3d)
        else:
            logger.info("train.channels_last ignored on %s (CUDA only)", device)
    if info.distributed:
        model = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    if compile:
        if cuda:
            model = torch.compile(model)
        else:
            logger.info("train.compile ignored on %s (CUDA only)", device)
    return model
