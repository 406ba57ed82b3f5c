"""Training loop: optimiser, schedule, checkpoints, evaluation and logs for one run.

The ``Trainer`` is handed what ``nlvideo.pipeline`` built from the config (model, loaders,
transforms, records) and trains it, single-process or under ``torchrun`` (DDP). Only rank 0
writes files. A run can be stopped after ``train.max_steps`` steps and resumed from its
``last.pt`` with the same result as an uninterrupted run: the checkpoint holds the model,
optimiser, schedule, scaler, epoch, step, position in the epoch's (epoch-seeded) sample order
and every rank's RNG states. Checkpoints are also written every ``train.checkpoint_every``
steps and on SIGINT / SIGTERM (see ``nlvideo.engine.interrupt``); whether a checkpoint may be
resumed by this config is decided before the run folder is touched (``nlvideo.engine.resume``).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from nlvideo.config import Config, config_to_dict, config_to_yaml
from nlvideo.data.annotations import VideoRecord, save_classes
from nlvideo.data.transforms import DeviceBatch, TestTransform, TrainTransform, prefetch
from nlvideo.engine.batches import epoch_batches
from nlvideo.engine.checkpoint import (
    capture_rng_state,
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
from nlvideo.engine.interrupt import StopSignals, TrainingInterrupted, signal_from_votes
from nlvideo.engine.optim import LRSchedule, build_optimizer, build_schedule
from nlvideo.engine.precision import autocast, effective_amp
from nlvideo.engine.report import format_report, save_report
from nlvideo.engine.resume import (
    check_resume_classes,
    check_resume_world_size,
    restore_training_state,
    resume_command,
)
from nlvideo.engine.runlog import RunLog, RunningStats, progress_line
from nlvideo.engine.wrap import wrap_model
from nlvideo.metrics import EvalReport
from nlvideo.models.pretrained import FORMAT

logger = logging.getLogger(__name__)


EvalModel = Callable[[nn.Module, int], nn.Module]  # (model, epochs done) -> what to evaluate


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
    eval_model: EvalModel = lambda model, epoch: model  # e.g. precise BN, then the test head


class Trainer:
    """One run: builds everything from ``cfg`` and trains; ``fit()`` runs it.

    ``resume`` is the checkpoint to continue from, already checked against the config
    (``nlvideo.engine.resume.load_resume_checkpoint``); nothing is written before ``fit()``.
    """

    def __init__(
        self,
        cfg: Config,
        info: DistInfo,
        parts: TrainingParts,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.cfg, self.info, self.device = cfg, info, info.device
        t = cfg.train
        self.out_dir = Path(t.output_dir)
        self.amp = effective_amp(t.amp, self.device)
        if t.amp != "none" and self.amp == "none":
            logger.info(
                "train.amp=%s ignored on %s (autocast is used on CUDA only)", t.amp, self.device
            )
        self.classes, self.model_kwargs = parts.classes, parts.model_kwargs
        self.val_records, self.eval_model = parts.val_records, parts.eval_model
        options = {"sync_bn": t.sync_bn, "channels_last": t.channels_last, "compile": t.compile}
        self.model = wrap_model(parts.model, info, **options)
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
        # The train transform's generator is re-seeded every batch: a resume starts mid-epoch
        # without decoding the batches before it, even though prefetch draws a batch ahead.
        self.train_transform, self.test_transform = parts.train_transform, parts.test_transform
        self.epoch, self.step, self.batches_done = 0, 0, 0
        self.best_metric, self.best_epoch = -1.0, 0
        self._pending_rng: dict | None = None
        self._ckpt = resume
        self.log = RunLog(None)  # opened by fit(), once the resume check has passed
        self.stop, self.stop_votes = StopSignals(), [0.0, 0.0]
        self.bar = self.info.is_main and t.progress and sys.stderr.isatty()  # else log lines

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
            "best_epoch": self.best_epoch,
        }

    def _save(self, *, best: bool = False) -> None:
        state = self._state()  # collective: every rank takes part
        if self.info.is_main:
            save_checkpoint(self.out_dir / "last.pt", state)
            if best:
                save_checkpoint(self.out_dir / "best.pt", state)
        barrier(self.info)

    def _resume(self) -> None:
        ckpt, self._ckpt = self._ckpt, None
        if ckpt is None:
            return
        check_resume_classes(ckpt, self.cfg.model.name, self.classes)
        check_resume_world_size(ckpt, self.info.world_size)
        restore_training_state(
            ckpt,
            model=unwrap_model(self.model),
            optimizer=self.optimizer,
            schedule=self.schedule,
            scaler=self.scaler,
        )
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        self.batches_done = int(ckpt["sampler"]["batches_done"])
        self.best_metric = float(ckpt["best_metric"])
        self.best_epoch = int(ckpt.get("best_epoch", 0))
        self._pending_rng = ckpt["rng"][self.info.rank]
        logger.info("resumed from %s at epoch %d, step %d", ckpt["path"], self.epoch + 1, self.step)

    def _open_run_folder(self, resume_step: int | None) -> None:
        if self.info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(config_to_yaml(self.cfg))
            save_classes(self.classes, self.out_dir / "classes.json")
            self.log = RunLog(self.out_dir, resume_step=resume_step)

    def _stop_if_asked(self, votes: list[float] | None = None) -> None:
        """Save and raise ``TrainingInterrupted`` when any rank got SIGINT / SIGTERM."""
        if votes is None:  # between steps: one vote of every rank
            votes = torch.tensor(self.stop.votes(), device=self.device)  # NCCL: on the GPU
            votes = all_reduce_sum(votes, self.info).tolist()
        signum = signal_from_votes(votes)
        if not signum:
            return
        self._save()
        path = self.out_dir / "last.pt"
        command = resume_command(path, self.info.world_size)
        raise TrainingInterrupted(signum, self.step, str(path), command, is_main=self.info.is_main)

    # ------------------------------------------------------------------ loop

    def fit(self) -> dict[str, Any]:
        """Train (resuming if there is a checkpoint), evaluating as configured.

        Raises:
            TrainingInterrupted: SIGINT / SIGTERM stopped the run after a step; it was saved.
        """
        resumed = self._ckpt is not None
        self._resume()
        self._open_run_folder(self.step if resumed else None)
        try:
            with self.stop:
                return self._loop()
        finally:
            self.log.close()

    def _loop(self) -> dict[str, Any]:
        t, last = self.cfg.train, {}
        while self.epoch < self.num_epochs:
            epoch = self.epoch
            stats = self._train_epoch(epoch)
            self._stop_if_asked(self.stop_votes)
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
                if is_best:
                    self.best_metric, self.best_epoch = report.video_top1, epoch + 1
                self._log_eval(epoch, report)
            self._log_epoch(epoch, stats)
            self._save(best=is_best)
            self._stop_if_asked()
            if t.max_steps and self.step >= t.max_steps:
                logger.info("stopped at step %d (train.max_steps)", self.step)
                return last
        if not last:  # resumed a finished run: evaluate it again (no new log records)
            logger.info(
                "%s holds a finished run: evaluating it (new run: another train.output_dir)",
                self.out_dir,
            )
            last = self._evaluate().to_dict()
        # Which checkpoint this report scored, and how best.pt was chosen.
        scored = {"checkpoint": str(self.out_dir / "last.pt"), "epoch": self.epoch}
        best = {"best_checkpoint": str(self.out_dir / "best.pt"), "best_epoch": self.best_epoch}
        return {**last, "scored": {**scored, **best, "best_video_top1": self.best_metric}}

    def _batches(self, epoch: int) -> Iterator[DeviceBatch]:
        """The epoch's batches from the first one not done (see ``nlvideo.engine.batches``)."""
        rng, self._pending_rng = self._pending_rng, None
        return epoch_batches(
            self.train_loader,
            self.device,
            self.train_transform,
            seed=self.cfg.train.seed,
            epoch=epoch,
            rank=self.info.rank,
            start=self.batches_done,
            rng_state=rng,
        )

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        t, model = self.cfg.train, self.model
        model.train()
        stop_at = min(s for s in (t.max_steps, t.iterations, 10**18) if s > 0)
        batches = self._batches(epoch)
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=self.batches_done,
            desc=f"epoch {epoch + 1}/{self.num_epochs}",
            disable=not self.bar,
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
                if self.info.is_main and not self.bar:  # a file or a pipe: plain lines
                    where = f"epoch {epoch + 1}/{self.num_epochs} step {self.step}"
                    logger.info("%s: %s", where, progress_line(summary, lr))
                window = RunningStats()
            if signal_from_votes(self.stop_votes):
                break
            every = t.checkpoint_every
            if every and self.step % every == 0 and self.batches_done < self.steps_per_epoch:
                self._save()  # mid-epoch; the epoch's end saves anyway
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
                *loss.new_tensor(self.stop.votes()).unbind(),  # ranks agree on a stop request
            ]
        )
        loss_sum, correct, count, *self.stop_votes = all_reduce_sum(sums, self.info).tolist()
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
        lr, replaced = self.optimizer.param_groups[0]["lr"], stats["replaced"]
        line = f"{progress_line(stats, lr)}, replaced {replaced} broken videos"
        logger.info("epoch %d/%d done at step %d: %s", epoch + 1, self.num_epochs, self.step, line)

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
