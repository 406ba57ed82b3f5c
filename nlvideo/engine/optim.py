"""SGD (or AdamW) with optional decay-free norm/bias parameters, and a per-iteration LR schedule.

The schedule is a pure function of the optimiser step (linear warmup, then cosine or step
decay), so resuming needs only the step count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nlvideo.config import OptimConfig, TrainConfig
from nlvideo.models.freeze import model_parts


def param_groups(
    model: nn.Module, *, weight_decay: float, no_decay_bn_bias: bool, no_decay_bn: bool = False
) -> list[dict[str, Any]]:
    """Trainable parameters split into decayed and non-decayed groups.

    With ``no_decay_bn``, the parameters of normalisation layers (BN scales and shifts) go to a
    group with weight decay 0, exactly as PySlowFast's ``BN.WEIGHT_DECAY: 0.0`` (every
    ``_NormBase`` module) and video-nonlocal-net's ``WEIGHT_DECAY_BN: 0.0`` (every ``*_bn_*``
    blob); conv and fc biases keep the decay in both. ``no_decay_bn_bias`` exempts every 0-/1-D
    parameter (normalisation scales and shifts and all biases).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    norm_params = {
        id(p)
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm)
        for p in m.parameters(recurse=False)
    }
    if no_decay_bn_bias:
        exempt = {id(p) for p in params if p.ndim <= 1}
    elif no_decay_bn:
        exempt = norm_params
    else:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if id(p) not in exempt]
    no_decay = [p for p in params if id(p) in exempt]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def scale_lr(
    groups: list[dict[str, Any]], params: list[nn.Parameter], *, lr: float, mult: float
) -> list[dict[str, Any]]:
    """Split ``groups`` so that ``params`` get the learning rate ``lr * mult``, in groups after
    the others (the schedule then scales every group's initial lr by the same factor).

    With ``mult == 1`` the groups come back unchanged.
    """
    if mult == 1.0:
        return groups
    chosen = {id(p) for p in params}
    rest, scaled = [], []
    for group in groups:
        inside = [p for p in group["params"] if id(p) in chosen]
        outside = [p for p in group["params"] if id(p) not in chosen]
        if outside:
            rest.append({**group, "params": outside})
        if inside:
            scaled.append({**group, "params": inside, "lr": lr * mult})
    return rest + scaled


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD with momentum (the paper's recipes) or AdamW, from the ``optim`` config section.

    AdamW (decoupled weight decay, default betas) serves small nets trained from scratch, such
    as the built-in job's; ``momentum`` and ``nesterov`` apply to SGD only. The head (the
    classifier) trains at ``lr * head_lr_mult``; frozen parameters are left out.
    """
    groups = param_groups(
        model,
        weight_decay=cfg.weight_decay,
        no_decay_bn_bias=cfg.no_decay_bn_bias,
        no_decay_bn=cfg.no_decay_bn,
    )
    if cfg.head_lr_mult != 1.0:
        head = list(model_parts(model)["head"].parameters())
        groups = scale_lr(groups, head, lr=cfg.lr, mult=cfg.head_lr_mult)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.name != "sgd":
        raise ValueError(f"config key optim.name: expected sgd or adamw, got {cfg.name!r}")
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


class LRSchedule:
    """Linear warmup then cosine or step decay, evaluated per optimiser step.

    During warmup the factor rises linearly from ``warmup_start_factor`` to the main schedule's
    value at the end of warmup (as PySlowFast does); the main schedule spans all steps.

    Args:
        optimizer: its groups' ``lr`` are set from their ``initial_lr`` times the factor.
        total_steps: schedule length in optimiser steps.
        warmup_steps: linear warmup length.
        warmup_start_factor: factor at step 0 when warming up.
        kind: "cosine" or "step".
        milestones: for "step", steps at which the factor is multiplied by ``gamma``.
        gamma: step decay factor.
        final_factor: for "cosine", the factor at ``total_steps``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        total_steps: int,
        warmup_steps: int = 0,
        warmup_start_factor: float = 0.1,
        kind: str = "cosine",
        milestones: Sequence[int] = (),
        gamma: float = 0.1,
        final_factor: float = 0.0,
    ) -> None:
        if kind not in ("cosine", "step"):
            raise ValueError(f"schedule kind must be 'cosine' or 'step', got {kind!r}")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.optimizer = optimizer
        self.total_steps = total_steps
        self.warmup_steps = min(warmup_steps, total_steps)
        self.warmup_start_factor = warmup_start_factor
        self.kind = kind
        self.milestones = sorted(milestones)
        self.gamma = gamma
        self.final_factor = final_factor
        self.last_step = 0
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self._apply()

    def _main(self, step: int) -> float:
        if self.kind == "step":
            return self.gamma ** sum(step >= m for m in self.milestones)
        progress = min(step, self.total_steps) / self.total_steps
        return self.final_factor + (1 - self.final_factor) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )

    def factor(self, step: int) -> float:
        """LR multiplier for the optimiser step with 0-based index ``step``."""
        if step < self.warmup_steps:
            end = self._main(self.warmup_steps)
            start = self.warmup_start_factor
            return start + (end - start) * step / self.warmup_steps
        return self._main(step)

    def _apply(self) -> None:
        f = self.factor(self.last_step)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * f

    def step(self) -> None:
        """Advance one optimiser step and set the LR for the next one."""
        self.last_step += 1
        self._apply()

    def state_dict(self) -> dict[str, int]:
        return {"last_step": self.last_step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.last_step = int(state["last_step"])
        self._apply()


def schedule_steps(optim: OptimConfig, train: TrainConfig, steps_per_epoch: int) -> dict[str, Any]:
    """Schedule lengths in steps: epochs-based by default, iteration-based with train.iterations."""
    if train.iterations > 0:
        return {
            "total_steps": train.iterations,
            "warmup_steps": optim.warmup_iters,
            "milestones": list(optim.step_iters),
        }
    return {
        "total_steps": train.epochs * steps_per_epoch,
        "warmup_steps": round(optim.warmup_epochs * steps_per_epoch),
        "milestones": [round(e * steps_per_epoch) for e in optim.step_epochs],
    }


def build_schedule(
    optimizer: torch.optim.Optimizer, optim: OptimConfig, train: TrainConfig, steps_per_epoch: int
) -> LRSchedule:
    """The LR schedule from the ``optim`` and ``train`` config sections."""
    return LRSchedule(
        optimizer,
        **schedule_steps(optim, train, steps_per_epoch),
        warmup_start_factor=optim.warmup_start_factor,
        kind=optim.schedule,
        gamma=optim.gamma,
        final_factor=optim.final_lr_factor,
    )
