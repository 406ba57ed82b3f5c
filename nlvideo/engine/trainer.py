"""Training loop: optimiser, schedule, checkpoints, evaluation and logs for one run.

The ``Trainer`` is handed what ``nlvideo.pipeline`` built from the config (model, loaders,
transforms, records) and trains it, single-process or under ``torchrun`` (DDP). Only rank 0
writes files. A run can be stopped after ``train.max_steps`` steps and resumed from its
``last.pt`` with the same result as an uninterrupted run: the checkpoint holds the model,
optimiser, schedule, scaler, epoch, step, position in the epoch's (epoch-seeded) sample order
and every rank's RNG states.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from nlvideo.config import Config, config_to_dict, config_to_yaml
from nlvideo.data.annotations import VideoRecord, save_classes
from nlvideo.data.transforms import DeviceBatch, TestTransform, TrainTransform, prefetch
from nlvideo.engine.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
    unwrap_model,
)
from nlvideo.engine.distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    broadcast_buffers,
)
from nlvideo.engine.evaluate import evaluate
from nlvideo.engine.optim import LRSchedule, build_optimizer, build_schedule
from nlvideo.engine.precision import autocast, effective_amp
from nlvideo.engine.report import format_report, save_report
from nlvideo.engine.runlog import RunLog, RunningStats
from nlvideo.metrics import EvalReport
from nlvideo.models.pretrained import FORMAT

logger = logging.getLogger(__name__)


@dataclass
class TrainingParts:
    """What the pipeline builds for a training run (see ``nlvideo.pipeline.build_training``)."""

    model: nn.Module  # the plain network, initialised (and pretrained) on the CPU
    model_kwargs: dict[str, Any]  # build_model keywords, stored in every checkpoint
    classes: list[str]
    val_records: list[VideoRecord]
    train_loader: DataLoader
    val_loader: DataLoader
    train_transform: TrainTransform
    test_transform: TestTransform
    # Before each evaluation: (model, epochs done) -> what to evaluate (precise BN, test head).
    eval_model: Callable[[nn.Module, int], nn.Module] = lambda model, epoch: model


class Trainer:
    """One run: builds everything from ``cfg`` and trains; ``fit()`` runs it."""

    def __init__(self, cfg: Config, info: DistInfo, parts: TrainingParts) -> None:
        self.cfg, self.info, self.device = cfg, info, info.device
        t = cfg.train
        self.out_dir = Path(t.output_dir)
        if info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.amp = effective_amp(t.amp, self.device)
        if t.amp != "none" and self.amp == "none":
            logger.info(
                "train.amp=%s ignored on %s (autocast is used on CUDA only)", t.amp, self.device
            )
        self.classes, self.model_kwargs = parts.classes, parts.model_kwargs
        self.val_records, self.eval_model = parts.val_records, parts.eval_model
        self.model = self._wrap(parts.model)
        seed_everything(t.seed + info.rank)  # per-rank streams for dropout and the like
        self.optimizer = build_optimizer(unwrap_model(self.model), cfg.optim)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")
        self.train_loader, self.val_loader = parts.train_loader, parts.val_loader
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"train.batch_size={t.batch_size} is larger than the training set "
                f"({len(self.train_loader.dataset)} videos)"
            )
        self.schedule: LRSchedule = build_schedule(
            self.optimizer, cfg.optim, t, self.steps_per_epoch
        )
        self.num_epochs = (
            math.ceil(t.iterations / self.steps_per_epoch) if t.iterations > 0 else t.epochs
        )
        # The train transform's generator is re-seeded every epoch: augmentation replays
        # exactly on resume even though prefetch draws a batch ahead.
        self.train_transform, self.test_transform = parts.train_transform, parts.test_transform
        self.epoch, self.step, self.batches_done = 0, 0, 0
        self.best_metric = -1.0
        self._pending_rng: dict | None = None
        self.log = RunLog(self.out_dir if info.is_main else None)

    # ------------------------------------------------------------------ setup

    def _wrap(self, model: nn.Module) -> nn.Module:
        t, cuda = self.cfg.train, self.device.type == "cuda"
        if t.sync_bn and self.info.distributed:
            if cuda:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:  # torch's SyncBatchNorm runs on GPUs only
                logger.info("train.sync_bn ignored on %s (CUDA only)", self.device)
        model = model.to(self.device)
        if t.channels_last:
            if cuda:
                model = model.to(memory_format=torch.channels_last_3d)
            else:
                logger.info("train.channels_last ignored on %s (CUDA only)", self.device)
        if self.info.distributed:
            ids = [self.device.index] if cuda else None
            model = DistributedDataParallel(model, device_ids=ids)
        if t.compile:
            if cuda:
                model = torch.compile(model)
            else:
                logger.info("train.compile ignored on %s (CUDA only)", self.device)
        return model

    # ------------------------------------------------------------------ checkpoints

    def _state(self) -> dict[str, Any]:
        rng = all_gather_objects(capture_rng_state(), self.info)  # one entry per rank
        return {
            "format": FORMAT,
            "model": unwrap_model(self.model).state_dict(),
            "model_name": self.cfg.model.name,
            "model_kwargs": self.model_kwargs,
            "classes": list(self.classes),
            "config": config_to_dict(self.cfg),
            "epoch": self.epoch,
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "sampler": {
                "epoch": self.epoch,
                "batches_done": self.batches_done,
                "seed": self.cfg.train.seed,
            },
            "best_metric": self.best_metric,
        }

    def _save(self, *, best: bool = False) -> None:
        state = self._state()  # collective: every rank takes part
        if self.info.is_main:
            save_checkpoint(self.out_dir / "last.pt", state)
            if best:
                save_checkpoint(self.out_dir / "best.pt", state)
        barrier(self.info)

    def _resume(self) -> None:
        path = Path(self.cfg.train.resume) if self.cfg.train.resume else self.out_dir / "last.pt"
        if not self.cfg.train.resume and not path.is_file():
            return
        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt["model_name"] != self.cfg.model.name or ckpt["classes"] != self.classes:
            raise ValueError(
                f"checkpoint {path} holds a {ckpt['model_name']!r} model for "
                f"{len(ckpt['classes'])} classes, but this run trains {self.cfg.model.name!r} on "
                f"{len(self.classes)} classes (a different run folder or train.resume?)"
            )
        try:
            unwrap_model(self.model).load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ValueError(
                f"checkpoint {path} does not fit this run's model/optimiser: {e}"
            ) from e
        self.schedule.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"]:  # empty when saved without fp16
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        self.batches_done = int(ckpt["sampler"]["batches_done"])
        self.best_metric = float(ckpt["best_metric"])
        rngs = ckpt["rng"]
        if len(rngs) == self.info.world_size:
            self._pending_rng = rngs[self.info.rank]
        else:
            logger.warning(
                "checkpoint %s was written by %d ranks, not %d: RNG states not restored",
                path,
                len(rngs),
                self.info.world_size,
            )
        logger.info("resumed from %s at epoch %d, step %d", path, self.epoch + 1, self.step)

    def _write_run_files(self) -> None:
        if self.info.is_main:
            (self.out_dir / "config.yaml").write_text(config_to_yaml(self.cfg))
            save_classes(self.classes, self.out_dir / "classes.json")

    # ------------------------------------------------------------------ loop

    def fit(self) -> dict[str, Any]:
        """Train (resuming if there is a checkpoint), evaluating as configured."""
        self._write_run_files()
        self._resume()
        t = self.cfg.train
        last: dict[str, Any] = {}
        try:
            while self.epoch < self.num_epochs:
                epoch = self.epoch
                stats = self._train_epoch(epoch)
                finished = self.batches_done == self.steps_per_epoch or (
                    t.iterations > 0 and self.step >= t.iterations
                )
                if not finished:  # stopped by train.max_steps in the middle of an epoch
                    self._save()
                    logger.info("stopped at step %d (train.max_steps); checkpoint saved", self.step)
                    return last
                self.epoch, self.batches_done = epoch + 1, 0
                is_best = False
                if (epoch + 1) % t.eval_every == 0 or self.epoch == self.num_epochs:
                    report = self._evaluate()
                    last = report.to_dict()
                    is_best = report.video_top1 > self.best_metric
                    self.best_metric = max(self.best_metric, report.video_top1)
                    self._log_eval(epoch, report)
                self._log_epoch(epoch, stats)
                self._save(best=is_best)
                if t.max_steps and self.step >= t.max_steps:
                    logger.info("stopped at step %d (train.max_steps)", self.step)
                    return last
            if not last:  # resumed a finished run: evaluate it again
                logger.info(
                    "%s holds a finished run: evaluating it (new run: another train.output_dir)",
                    self.out_dir,
                )
                report = self._evaluate()
                last = report.to_dict()
                self._log_eval(self.epoch - 1, report)
            return last
        finally:
            self.log.close()

    def _batches(self, epoch: int) -> Iterator[DeviceBatch]:
        """The epoch's batches, after those done before a mid-epoch checkpoint.

        Sample order (sampler), clip windows (dataset) and augmentation (transform generator)
        depend only on (seed, epoch, rank, position), so the skipped batches are replayed and
        discarded; the global RNG states are then restored to where the checkpoint took them.
        """
        self.train_loader.sampler.set_epoch(epoch)
        seed = np.random.SeedSequence([self.cfg.train.seed, epoch, self.info.rank])
        self.train_transform.generator.manual_seed(int(seed.generate_state(1)[0]))
        if self._pending_rng is not None and self.batches_done == 0:
            restore_rng_state(self._pending_rng)
            self._pending_rng = None
        batches = prefetch(self.train_loader, self.device, self.train_transform)
        for _ in range(self.batches_done):
            next(batches)
        if self._pending_rng is not None:  # mid-epoch: the state was taken at this point
            restore_rng_state(self._pending_rng)
            self._pending_rng = None
        return batches

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        t, model = self.cfg.train, self.model
        model.train()
        stop_at = min(s for s in (t.max_steps, t.iterations, 10**18) if s > 0)
        batches = self._batches(epoch)
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=self.batches_done,
            desc=f"epoch {epoch + 1}/{self.num_epochs}",
            disable=not (self.info.is_main and t.progress),
            dynamic_ncols=True,
            leave=False,
        )
        window, total = RunningStats(), RunningStats()
        replaced = torch.zeros(1, device=self.device)
        tick = time.perf_counter()
        while self.batches_done < self.steps_per_epoch and self.step < stop_at:
            batch = next(batches)
            waited = time.perf_counter() - tick
            stats = self._train_step(batch)
            replaced += batch.replaced
            dt = time.perf_counter() - tick
            tick = time.perf_counter()
            window.add(*stats, waited, dt)
            total.add(*stats, waited, dt)
            self.batches_done += 1
            bar.update(1)
            summary = window.summary()
            bar.set_postfix(
                loss=f"{summary['loss']:.3f}",
                acc=f"{summary['acc']:.2f}",
                clips_s=f"{summary['clips_per_s']:.1f}",
                wait=f"{summary['data_wait']:.0%}",
            )
            if self.step % t.log_every == 0:
                lr = self.optimizer.param_groups[0]["lr"]
                self.log.write("train", self.step, {"epoch": epoch + 1, "lr": lr, **summary})
                window = RunningStats()
        bar.close()
        return {**total.summary(), "replaced": int(all_reduce_sum(replaced, self.info).item())}

    def _train_step(self, batch: DeviceBatch) -> tuple[float, float, float]:
        clips = batch.clips
        if self.cfg.train.channels_last and self.device.type == "cuda":
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        with autocast(self.device, self.amp):
            logits = self.model(clips)
        loss = F.cross_entropy(
            logits.float(), batch.labels, label_smoothing=self.cfg.train.label_smoothing
        )
        n = float(batch.labels.numel())
        sums = torch.stack(
            [
                loss.detach() * n,
                (logits.argmax(1) == batch.labels).sum().float(),
                loss.new_tensor(n),
            ]
        )
        loss_sum, correct, count = all_reduce_sum(sums, self.info).tolist()
        if not math.isfinite(loss_sum):
            raise FloatingPointError(
                f"loss is {loss_sum / count} at step {self.step + 1} (epoch {self.epoch + 1}, "
                f"batch {self.batches_done + 1}); lower optim.lr or set optim.clip_grad_norm"
            )
        self.scaler.scale(loss).backward()
        if self.cfg.optim.clip_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        self.step += 1
        return loss_sum, correct, count

    def _evaluate(self) -> EvalReport:
        model = unwrap_model(self.model)  # no DDP collectives, no recompilation for test shapes
        broadcast_buffers(model, self.info)  # rank 0's BN statistics, as in the checkpoint
        return evaluate(
            self.eval_model(model, self.epoch),
            prefetch(self.val_loader, self.device, self.test_transform),
            records=self.val_records,
            classes=self.classes,
            amp=self.amp,
            distributed=self.info.distributed,
        )

    # ------------------------------------------------------------------ logs

    def _log_epoch(self, epoch: int, stats: dict[str, float]) -> None:
        self.log.write("epoch", self.step, {"epoch": epoch + 1, **stats})
        logger.info(
            "epoch %d/%d: loss %.4f, clip acc %.3f, %.1f clips/s, data wait %.0f%%, "
            "replaced %d broken videos",
            epoch + 1,
            self.num_epochs,
            stats["loss"],
            stats["acc"],
            stats["clips_per_s"],
            100 * stats["data_wait"],
            stats["replaced"],
        )

    def _log_eval(self, epoch: int, report: EvalReport) -> None:
        keys = ("clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_accuracy")
        values = {k: getattr(report, k) for k in keys}
        self.log.write(
            "eval", self.step, {"epoch": epoch + 1, **values, "failed": len(report.failed)}
        )
        if not self.info.is_main:
            return
        logger.info("eval after epoch %d:\n%s", epoch + 1, format_report(report))
        save_report(report, self.out_dir)
