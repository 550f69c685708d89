"""The training loop of QAConv-GS, made of parts that are passed in (the paper's recipe: docs/training.md).

    trainer = Trainer(model, criterion, optimizer, sampler, loader, schedule, callbacks=[...])
    trainer.fit()

Per epoch the batch sampler builds its batches (GS: one representative image per class is embedded
with the current weights and every class anchors one batch with its nearest classes), then SGD on the
criterion's per-anchor losses of the batch's all-pairs QAConv scores. With `freeze_bn` the backbone
runs in eval mode (frozen BN statistics; their affine parameters still train) while the matcher's
batch norms use batch statistics. `accumulate` N averages N batches' gradients per step, which is what
N DDP processes do. A `TrainingGuard` stops a run whose scores collapse or whose weights diverge.
Callbacks do everything around the loop: checkpoints, logs, curves, progress.
`qaconv.engine.build_trainer(config, run_dir)` assembles all of it from a TrainConfig (qaconv.engine.assemble).
"""

from __future__ import annotations

import contextlib
import random
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import clip_grad_norm_

from qaconv.data.loader import EpochLoader
from qaconv.data.samplers import ClassBatchSampler
from qaconv.engine.callbacks import Callback
from qaconv.engine.distributed import DistContext, all_reduce_sum
from qaconv.engine.features import autocast_context
from qaconv.engine.guard import TrainingGuard
from qaconv.engine.schedule import DECAY, AdaptiveSchedule
from qaconv.engine.validation import Validator
from qaconv.errors import QAConvError


class _TrainStep(nn.Module):
    """Model and loss as one module, so DistributedDataParallel syncs the backbone and the matcher."""

    def __init__(self, model: nn.Module, criterion: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion

    def forward(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return self.criterion(self.model(images), labels)


def capture_rng() -> dict[str, Any]:
    """The state of Python's, NumPy's and torch's global generators (CUDA's too where present)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Trains `model` and the matcher inside `criterion` until `schedule` ends the run.

    Args:
        model: images [B, 3, H, W] -> feature maps (a FeatureMapNet).
        criterion: (feature maps, labels) -> (loss [B], accuracy [B]); holds the matcher as `.matcher`.
        optimizer: over the model's and the matcher's parameters (param groups keep their own lr).
        sampler: the batch sampler (PK or Graph) whose state is checkpointed.
        loader: yields (images, labels, ...) batches of an epoch from `sampler` (an EpochLoader).
        schedule: when to decay the learning rates and when to stop (AdaptiveSchedule).
        callbacks: called around epochs and batches (checkpoints, logs, progress).
        guard: stops the run on a collapse or divergence (None: no checks but the skip rule).
        validator: held-out Rank-1 / mAP during training (None: none); with it, best.pt is the epoch of the
            highest validation mAP instead of the lowest loss.
        amp_dtype: autocast dtype (None: float32); float16 uses a grad scaler.
        clip_value: gradient-norm clip, separately for the model and the matcher (0: none).
        accumulate: batches whose gradients are averaged per SGD step.
        freeze_bn: the model runs in eval mode (frozen BN statistics).
        logit_scale_floor: after every step the matcher's logit scale is kept at least this (0: free).
        lr_warmup_iters: the learning rates rise linearly over this many iterations (0: none).
        max_iters_per_epoch: cap on the batches of an epoch (0: all).
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        optimizer: torch.optim.Optimizer,
        sampler: ClassBatchSampler,
        loader: EpochLoader,
        schedule: AdaptiveSchedule,
        *,
        callbacks: Sequence[Callback] = (),
        guard: TrainingGuard | None = None,
        validator: Validator | None = None,
        ctx: DistContext | None = None,
        amp_dtype: torch.dtype | None = None,
        clip_value: float = 8.0,
        accumulate: int = 1,
        freeze_bn: bool = True,
        logit_scale_floor: float = 0.0,
        lr_warmup_iters: int = 0,
        max_iters_per_epoch: int = 0,
    ) -> None:
        if accumulate < 1:
            raise QAConvError(f"--accumulate must be >= 1, got {accumulate}")
        self.model = model
        self.criterion = criterion
        self.matcher = criterion.matcher
        self.optimizer = optimizer
        self.sampler = sampler
        self.loader = loader
        self.schedule = schedule
        self.callbacks = list(callbacks)
        self.guard = guard
        self.validator = validator
        self.ctx = ctx or DistContext()
        self.device = self.ctx.device
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp_dtype == torch.float16)
        self.clip_value = clip_value
        self.accumulate = accumulate
        self.freeze_bn = freeze_bn
        self.logit_scale_floor = logit_scale_floor
        self.lr_warmup_iters = lr_warmup_iters
        self.max_iters_per_epoch = max_iters_per_epoch
        step = _TrainStep(model, criterion)
        self.step_module = DistributedDataParallel(step) if self.ctx.enabled else step
        for group in self.optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
        self.epoch = 0
        self.iteration = 0  # SGD steps taken (lr warm-up)
        self.history: list[dict[str, Any]] = []
        self.best_loss = float("inf")
        self.best_val_map = float("-inf")
        self.changes: dict[str, Any] = {}  # options a resume changed, recorded with the next epoch

    # -------------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs beyond the weights: optimizer, scaler, schedule, sampler, RNGs, history."""
        return {
            "epoch": self.epoch,
            "iteration": self.iteration,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "schedule": self.schedule.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": capture_rng(),
            "history": self.history,
            "best_loss": self.best_loss,
            "best_val_map": self.best_val_map,
            "warmup": self.sampler.warmup.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # The optimizer state holds the decayed learning rates: the schedule must not decay them again.
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])  # compat(0.2) base-lr: checkpoints before lr warm-up
        self.scaler.load_state_dict(state["scaler"])
        self.schedule.load_state_dict(state["schedule"])
        self._load_sampler_state(state["sampler"], int(state["epoch"]))
        restore_rng(state["rng"])
        self.epoch = int(state["epoch"])
        self.iteration = int(state.get("iteration", 0))
        self.history = list(state.get("history", []))
        self.best_loss = float(state.get("best_loss", float("inf")))
        self.best_val_map = float(state.get("best_val_map", float("-inf")))
        if "warmup" in state:  # compat(0.2) warmup-state: checkpoints before the automatic warm-up
            self.sampler.warmup.load_state_dict(state["warmup"])

    def _load_sampler_state(self, state: dict[str, Any], epoch: int) -> None:
        """The sampler's cursors; when the training images changed since (files added, or removed after
        they became unreadable), the sampler starts afresh instead, with a warning: the run goes on, but no
        longer repeats an uninterrupted one exactly."""
        if self.sampler.same_labels(state):
            self.sampler.load_state_dict(state)
            return
        before = f"{len(state['lists'])} images of {len(state['cursors'])} ids"
        now = f"{self.sampler.num_samples} of {self.sampler.num_classes}"
        warnings.warn(
            f"the training images changed since epoch {epoch} was saved ({before} then, {now} now): the batch "
            "sampler starts afresh, so the run continues but will not repeat an uninterrupted one exactly",
            UserWarning,
            stacklevel=3,
        )

    # ----------------------------------------------------------------------------------------- training

    def _call(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)

    def fit(self) -> list[dict[str, Any]]:
        """Train from the current epoch until the schedule ends the run; returns the per-epoch history."""
        self._call("on_fit_start")
        try:
            while not self.schedule.finished(self.epoch):
                self.run_epoch()
        finally:
            self._call("on_fit_end")
        return self.history

    def run_epoch(self, max_batches: int | None = None) -> dict[str, Any]:
        """Train the next epoch (at most `max_batches` of its batches: experiments with a budget in iterations)
        and do what ends it: the warm-up's switch, the schedule, the weights check, validation, best.pt, the
        history and the callbacks. Returns its statistics."""
        self.epoch += 1
        stats = self.train_epoch(self.epoch, max_batches)
        self._end_warmup(stats)
        stats["decayed"] = self.schedule.end_epoch(self.epoch, stats["loss"])
        if stats["decayed"]:
            for group in self.optimizer.param_groups:
                group["lr"] *= DECAY
                group["base_lr"] *= DECAY
        stats["lr"] = [g["lr"] for g in self.optimizer.param_groups]
        if self.guard is not None:
            self.guard.check_weights(self.model, self.matcher, self.epoch)
        self._validate(stats)
        stats["best"] = self._is_best(stats)
        if self.changes:
            stats["changed"], self.changes = self.changes, {}
        self.history.append(stats)
        self._call("on_epoch_end", stats)
        return stats

    def _end_warmup(self, stats: dict[str, Any]) -> None:
        """An automatic graph-sampling warm-up decides after each of its epochs whether graph sampling starts
        next; the adaptive schedule's reference is then the second graph-sampled epoch. A run that ends in its
        automatic warm-up leaves it undecided (a resumed run with more epochs goes on with it)."""
        warmup = self.sampler.warmup
        if self.sampler.uses_graph and not warmup.decided and self.schedule.finished(self.epoch):
            stats["warmup_unfinished"] = f"batch-hard accuracy {stats['acc']:.0%} below {warmup.accuracy:.0%}"
            return
        reason = warmup.end_epoch(self.epoch, stats["acc"])
        if reason and self.sampler.uses_graph:
            stats["graph_sampling_from"] = self.epoch + 1
            stats["warmup_ended"] = reason
            self.schedule.start_method(self.epoch + 1)

    def _validate(self, stats: dict[str, Any]) -> None:
        """Held-out Rank-1 / mAP into `stats` when due: on the validator's schedule, at the last epoch and at the
        end of the graph-sampling warm-up (main process only: the others wait at their next collective)."""
        if self.validator is None or not self.ctx.is_main:
            return
        finished = self.schedule.finished(self.epoch)
        if self.validator.due(self.epoch) or finished or "warmup_ended" in stats:
            stats.update(self.validator(self.model, self.matcher))

    def _is_best(self, stats: dict[str, Any]) -> bool:
        """Whether this epoch's model is the best so far: by validation mAP when the run validates (an epoch
        without validation never is), else by the loss (restarted when the loss changes: a warm-up loss's
        values are not comparable with the next loss's; records of runs from before loss names were
        recorded had one loss throughout)."""
        if self.validator is not None:
            if "val_mAP" not in stats or stats["val_mAP"] < self.best_val_map:
                return False
            self.best_val_map = stats["val_mAP"]
            return True
        # compat(0.2) loss-name: metrics of runs from before loss names were recorded had one loss throughout
        if self.history and self.history[-1].get("loss_name", stats["loss_name"]) != stats["loss_name"]:
            self.best_loss = float("inf")
        best = stats["loss"] <= self.best_loss
        self.best_loss = min(self.best_loss, stats["loss"])
        return best

    def batches_in_epoch(self, max_batches: int | None = None) -> int:
        """Batches the next epoch trains on: the sampler's, capped by max_iters_per_epoch and `max_batches`."""
        total = len(self.sampler)
        for cap in (self.max_iters_per_epoch, max_batches):
            total = min(total, cap) if cap else total
        return total

    def train_epoch(self, epoch: int, max_batches: int | None = None) -> dict[str, Any]:
        """One pass over the sampler's batches of epoch `epoch` (1-based), at most `max_batches` of them
        (experiments with an iteration budget); returns its statistics."""
        batches = self.loader.epoch(epoch)
        total = self.batches_in_epoch(max_batches)
        self.model.train(not self.freeze_bn)
        self.criterion.train()
        self.criterion.set_epoch(epoch, self.sampler.warmup.in_warmup(epoch))
        self._call("on_epoch_start", epoch, total)
        sums = np.zeros(4)  # loss sum, accuracy sum, batches, skipped
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        for iteration, (images, labels, *_) in enumerate(batches):
            if iteration >= total:
                break
            group_start = iteration - iteration % self.accumulate
            group_size = min(self.accumulate, total - group_start)
            update = iteration + 1 == group_start + group_size
            loss, acc, skipped = self._step(images, labels, 1.0 / group_size, update)
            if self.guard is not None:
                self.guard.after_batch(self, epoch, iteration + 1, loss, skipped)
            sums += (loss, acc, 1, 0) if not skipped else (0, 0, 0, 1)
            self._call("on_batch_end", iteration + 1, sums)
        seconds = time.perf_counter() - start
        loss_sum, acc_sum, done, skipped = all_reduce_sum(sums.tolist(), self.ctx)
        if done == 0:
            raise QAConvError(f"epoch {epoch} had no batch with a finite loss (lower --lr, or use --amp off)")
        return {
            "epoch": epoch,
            "sampling": "graph" if self.sampler.graph_epoch(epoch) else "pk",
            "loss": loss_sum / done,
            "loss_name": self.criterion.name,
            "acc": acc_sum / done,
            "batches": int(done),
            "skipped": int(skipped),
            "images_per_s": (done + skipped) * self.loader.batch_size / max(seconds, 1e-9),
            "seconds": seconds,
            "graph_seconds": self.sampler.last_graph_seconds,
        }

    def _step(
        self, images: Tensor, labels: Tensor, weight: float = 1.0, update: bool = True
    ) -> tuple[float, float, bool]:
        """One batch: backward with `weight`, then (`update`) the SGD step; returns (loss, accuracy, skipped).

        A batch is skipped when none of its losses is finite, or when it ends an accumulation whose
        gradients are not finite (no update is made then)."""
        loss, acc, finite = self._backward(images, labels, weight, sync=update)
        stepped = self._update() if update else True
        return loss, acc, not finite or not stepped

    def _backward(self, images: Tensor, labels: Tensor, weight: float, sync: bool) -> tuple[float, float, bool]:
        """Forward and backward of one batch, adding `weight` x its gradients to the parameters' grads.

        Non-finite per-anchor losses are left out of the mean; returns (loss, accuracy, any finite
        loss). `sync=False` keeps DDP from all-reducing (an accumulation step that is not the last).
        """
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        no_sync = self.step_module.no_sync() if self.ctx.enabled and not sync else contextlib.nullcontext()
        with no_sync:
            with autocast_context(self.device, self.amp_dtype):
                loss_vec, acc = self.step_module(images, labels)
            loss_vec = loss_vec.float()
            finite = torch.isfinite(loss_vec)
            num_finite = int(finite.sum())
            loss = torch.where(finite, loss_vec, torch.zeros_like(loss_vec)).sum() / max(num_finite, 1)
            self.scaler.scale(loss * weight).backward()
        return float(loss.detach()), float(acc.float().mean()), num_finite > 0

    def _update(self) -> bool:
        """Clip (per group of parameters) and take the SGD step; False when the gradients were not finite
        and no fp16 grad scaler handles them (the scaler skips such a step itself and lowers its scale)."""
        self._warm_up_lr()
        self.scaler.unscale_(self.optimizer)
        limit = self.clip_value if self.clip_value > 0 else float("inf")
        norms = [clip_grad_norm_(self.model.parameters(), limit), clip_grad_norm_(self.matcher.parameters(), limit)]
        stepped = self.scaler.is_enabled() or all(bool(torch.isfinite(n)) for n in norms)
        if stepped:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.iteration += 1
            if self.logit_scale_floor > 0:
                with torch.no_grad():
                    self.matcher.logit_bn.weight.clamp_(min=self.logit_scale_floor)
        self.optimizer.zero_grad(set_to_none=True)
        return stepped

    def _warm_up_lr(self) -> None:
        """Linear learning-rate warm-up: step i of the first lr_warmup_iters uses (i + 1) / lr_warmup_iters."""
        if self.iteration >= self.lr_warmup_iters:
            return
        factor = (self.iteration + 1) / self.lr_warmup_iters
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
