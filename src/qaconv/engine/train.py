"""Training QAConv with Graph Sampling (QAConv 2.1 recipe, SPEC 1.5-1.8).

Per epoch: the sampler builds its batches (GS: one representative image per class is embedded
with the current weights and every class anchors one batch with its nearest classes), then SGD
on the batch-hard triplet loss of the batch's all-pairs QAConv scores. The backbone runs in eval
mode (frozen BN statistics; their affine parameters still train) while the matcher's batch norms
use batch statistics. `accumulate` N averages N batches' gradients per step, which is what N
DDP processes do (SeededBatches gives every image the same augmentation either way). Each epoch
ends with an atomic checkpoint that `resume=True` continues from exactly: weights, optimizer,
grad scaler, schedule, sampler cursors and every RNG.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import clip_grad_norm_

from qaconv.config import TrainConfig, save_config
from qaconv.data import open_dataset
from qaconv.data.loader import ImageDataset, make_loader, seed_everything
from qaconv.data.samplers import GraphSampler, PKSampler, SeededBatches
from qaconv.data.transforms import build_train_transform
from qaconv.engine.checkpoint import (
    BEST,
    LAST,
    build_model,
    import_published_checkpoint,
    load_state,
    model_payload,
    read_checkpoint,
    save_checkpoint,
)
from qaconv.engine.distributed import DistContext, all_reduce_sum
from qaconv.engine.features import autocast_context, extract_feature_maps
from qaconv.engine.neighbors import qaconv_neighbors_fn
from qaconv.engine.schedule import DECAY, AdaptiveSchedule
from qaconv.errors import QAConvError
from qaconv.losses import PairwiseMatchingLoss, TripletLoss

MAX_SKIPPED_IN_A_ROW = 50
LOSSES = ("triplet", "pairwise")
SAMPLERS = ("gs", "pk")
AMP_MODES = ("auto", "off", "fp16", "bf16")


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for --amp: auto is float16 on CUDA and off elsewhere."""
    if mode not in AMP_MODES:
        raise QAConvError(f"--amp must be one of {', '.join(AMP_MODES)}, got {mode!r}")
    if mode == "auto":
        return torch.float16 if device.type == "cuda" else None
    if mode == "fp16" and device.type != "cuda":
        raise QAConvError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")
    return {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[mode]


class _TrainStep(nn.Module):
    """Model and loss as one module, so DistributedDataParallel syncs the backbone and the matcher."""

    def __init__(self, model: nn.Module, criterion: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion

    def forward(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return self.criterion(self.model(images), labels)


def _capture_rng() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Builds everything a run needs from a TrainConfig and trains until the schedule stops it."""

    def __init__(
        self,
        config: TrainConfig,
        out_dir: str | Path,
        ctx: DistContext | None = None,
        *,
        resume: bool = False,
        init_from: str | None = None,
        quiet: bool = False,
    ) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.ctx = ctx or DistContext()
        self.device = self.ctx.device
        self.quiet = quiet or not self.ctx.is_main
        _check_options(config)
        seed_everything(config.seed)
        torch.backends.cudnn.benchmark = not config.deterministic
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

        self.dataset = open_dataset(config.dataset, config.data_dir, config.combine_all)
        self.records = self.dataset.train
        if not self.records:
            raise QAConvError(f"data set {config.dataset} has no training images")
        self.model_config = config.model_config()
        pretrained = None if resume or init_from else config.pretrained
        self.model, self.matcher = build_model(self.model_config, pretrained=pretrained)
        if init_from:
            import_published_checkpoint(init_from, self.model, self.matcher)
        self.model.to(self.device)
        self.matcher.to(self.device)
        if config.loss == "triplet":
            self.criterion = TripletLoss(self.matcher, config.margin)
        else:
            self.criterion = PairwiseMatchingLoss(self.matcher)
        self.optimizer = self._build_optimizer()
        self.amp_dtype = amp_dtype(config.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.schedule = AdaptiveSchedule(config.step_factor, config.max_epochs)
        self.graph_seconds = 0.0
        self.sampler = self._build_sampler()
        transform = build_train_transform(
            config.height, config.width, min_size=config.min_size, max_size=config.max_size
        )
        self.train_set = ImageDataset(self.records, transform)
        step = _TrainStep(self.model, self.criterion)
        self.step_module = DistributedDataParallel(step) if self.ctx.enabled else step
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best_loss = float("inf")
        if resume:
            self._resume(self.out_dir / LAST)

    # ------------------------------------------------------------------------------------------ set-up

    def _build_optimizer(self) -> torch.optim.SGD:
        """SGD (nesterov): backbone at backbone_lr_mult x lr, neck at lr, matcher at matcher_lr_mult x lr."""
        c = self.config
        groups = [{"params": list(self.model.base.parameters()), "lr": c.lr * c.backbone_lr_mult}]
        if self.model.neck_conv is not None:
            groups.append({"params": list(self.model.neck_conv.parameters()), "lr": c.lr})
        groups.append({"params": list(self.matcher.parameters()), "lr": c.lr * c.matcher_lr_mult})
        return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, nesterov=True)

    def _build_sampler(self) -> PKSampler | GraphSampler:
        c, labels = self.config, [r.pid for r in self.records]
        common = dict(batch_size=c.batch_size, num_instances=c.num_instances, seed=c.seed)
        common.update(rank=self.ctx.rank, world_size=self.ctx.world_size)
        if c.sampler == "pk":
            return PKSampler(labels, **common)
        neighbors = qaconv_neighbors_fn(self._extract_representatives, self.matcher, device=self.device)

        def timed_neighbors(sample_indices: Tensor, k: int) -> Tensor:
            start = time.perf_counter()
            table = neighbors(sample_indices, k)
            self.graph_seconds += time.perf_counter() - start
            return table

        return GraphSampler(labels, timed_neighbors, **common)

    def _extract_representatives(self, sample_indices: Tensor) -> Tensor:
        """Feature maps of the GS representatives with the current weights (eval mode, test transform)."""
        c = self.config
        records = [self.records[i] for i in sample_indices.tolist()]
        return extract_feature_maps(
            self.model,
            records,
            height=c.height,
            width=c.width,
            batch_size=c.eval_batch,
            num_workers=c.workers,
            device=self.device,
            autocast_dtype=self.amp_dtype,
            out_dtype=torch.float16 if self.device.type == "cuda" else torch.float32,
        ).to(self.device)

    # ------------------------------------------------------------------------------------- checkpoints

    def _payload(self) -> dict[str, Any]:
        return model_payload(
            self.model,
            self.matcher,
            self.model_config,
            config=asdict(self.config),
            epoch=self.epoch,
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(),
            schedule=self.schedule.state_dict(),
            sampler=self.sampler.state_dict(),
            rng=_capture_rng(),
            history=self.history,
            best_loss=self.best_loss,
        )

    def _resume(self, path: Path) -> None:
        payload = read_checkpoint(path)
        missing = [k for k in ("optimizer", "schedule", "sampler", "rng", "epoch") if k not in payload]
        if missing:
            raise QAConvError(f"{path} cannot be resumed: it lacks {', '.join(missing)} (not a training checkpoint)")
        load_state(self.model, payload["model"], f"{path} model")
        load_state(self.matcher, payload["matcher"], f"{path} matcher")
        # The optimizer state holds the decayed learning rates: the schedule must not decay them again.
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scaler.load_state_dict(payload["scaler"])
        self.schedule.load_state_dict(payload["schedule"])
        self.schedule.set_max_epochs(self.config.max_epochs)
        self.sampler.load_state_dict(payload["sampler"])
        _restore_rng(payload["rng"])
        self.epoch = int(payload["epoch"])
        self.history = list(payload.get("history", []))
        self.best_loss = float(payload.get("best_loss", float("inf")))

    def _save(self, epoch_loss: float) -> None:
        payload = self._payload()
        save_checkpoint(payload, self.out_dir / LAST)
        if epoch_loss < self.best_loss:
            self.best_loss = epoch_loss
            payload["best_loss"] = epoch_loss
            save_checkpoint(payload, self.out_dir / BEST)

    # ---------------------------------------------------------------------------------------- training

    def fit(self) -> list[dict[str, Any]]:
        """Train from the current epoch until the schedule ends the run; returns the per-epoch history."""
        if self.ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.out_dir / "config.yaml")
        writer = self._tensorboard()
        try:
            while not self.schedule.finished(self.epoch):
                self.epoch += 1
                stats = self.train_epoch(self.epoch)
                stats["decayed"] = self.schedule.end_epoch(self.epoch, stats["loss"])
                if stats["decayed"]:
                    for group in self.optimizer.param_groups:
                        group["lr"] *= DECAY
                stats["lr"] = [g["lr"] for g in self.optimizer.param_groups]
                self.history.append(stats)
                if self.ctx.is_main:
                    self._record(stats, writer)
                    self._save(stats["loss"])
        finally:
            if writer is not None:
                writer.close()
        return self.history

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the sampler's batches for epoch `epoch` (1-based); returns its statistics.

        With `accumulate` N the gradients of N consecutive batches are averaged before each SGD step.
        """
        c = self.config
        self.sampler.set_epoch(epoch - 1)
        loader = make_loader(
            self.train_set,
            batch_sampler=SeededBatches(self.sampler, (c.seed, epoch)),
            num_workers=c.workers,
            device=self.device,
            seed=c.seed * 100_003 + epoch,
        )
        self.graph_seconds = 0.0
        self.model.train(not c.freeze_bn)
        self.criterion.train()
        total = len(self.sampler) if not c.max_iters_per_epoch else min(len(self.sampler), c.max_iters_per_epoch)
        progress = _Progress(epoch, total, c.batch_size * self.ctx.world_size, quiet=self.quiet)
        sums = np.zeros(4)  # loss sum, accuracy sum, batches, skipped
        skipped_in_a_row = 0
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        for iteration, (images, labels, _, _) in enumerate(loader):
            if iteration >= total:
                break
            group_start = iteration - iteration % c.accumulate
            group_size = min(c.accumulate, total - group_start)
            update = iteration + 1 == group_start + group_size
            loss, acc, skipped = self._step(images, labels, 1.0 / group_size, update)
            skipped_in_a_row = skipped_in_a_row + 1 if skipped else 0
            if skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
                raise QAConvError(
                    f"the loss was not finite for {skipped_in_a_row} batches in a row (epoch {epoch}, "
                    f"iteration {iteration + 1}); lower --lr, or use --amp off"
                )
            sums += (loss, acc, 1, 0) if not skipped else (0, 0, 0, 1)
            progress.update(iteration + 1, sums)
        seconds = time.perf_counter() - start
        loss_sum, acc_sum, batches, skipped = all_reduce_sum(sums.tolist(), self.ctx)
        progress.close()
        if batches == 0:
            raise QAConvError(f"epoch {epoch} had no batch with a finite loss")
        return {
            "epoch": epoch,
            "loss": loss_sum / batches,
            "acc": acc_sum / batches,
            "batches": int(batches),
            "skipped": int(skipped),
            "images_per_s": (batches + skipped) * c.batch_size / max(seconds, 1e-9),
            "seconds": seconds,
            "graph_seconds": self.graph_seconds,
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
        self.scaler.unscale_(self.optimizer)
        limit = self.config.clip_value if self.config.clip_value > 0 else float("inf")
        norms = [clip_grad_norm_(self.model.parameters(), limit), clip_grad_norm_(self.matcher.parameters(), limit)]
        stepped = self.scaler.is_enabled() or all(bool(torch.isfinite(n)) for n in norms)
        if stepped:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return stepped

    # ----------------------------------------------------------------------------------------- records

    def _tensorboard(self) -> Any:
        if not self.ctx.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.out_dir / "tensorboard"))

    def _record(self, stats: dict[str, Any], writer: Any) -> None:
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(stats) + "\n")
        if writer is not None:
            for key in ("loss", "acc", "images_per_s", "graph_seconds"):
                writer.add_scalar(f"train/{key}", stats[key], stats["epoch"])
            writer.add_scalar("train/lr", stats["lr"][-1], stats["epoch"])
        from qaconv.viz.curves import plot_training_curves

        plot_training_curves(self.history, self.out_dir / "training_curves.png")
        if not self.quiet:
            print(
                f"epoch {stats['epoch']}: loss {stats['loss']:.3f}, acc {stats['acc']:.1%}, "
                f"{stats['images_per_s']:.0f} img/s, graph {stats['graph_seconds']:.1f}s, "
                f"lr {stats['lr'][-1]:.2e}" + (f", skipped {stats['skipped']}" if stats["skipped"] else ""),
                flush=True,
            )


class _Progress:
    """A tqdm bar on a terminal; otherwise a plain line every tenth of the epoch."""

    def __init__(self, epoch: int, total: int, batch_images: int, quiet: bool) -> None:
        self.epoch, self.total, self.batch_images, self.quiet = epoch, total, batch_images, quiet
        self.start = time.perf_counter()
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"epoch {epoch}", leave=False)
        self.every = max(1, total // 10)

    def update(self, done: int, sums: np.ndarray) -> None:
        if self.quiet:
            return
        batches = max(sums[2], 1)
        elapsed = time.perf_counter() - self.start
        rate = done * self.batch_images / max(elapsed, 1e-9)
        eta = elapsed / done * (self.total - done)
        fields = {"loss": f"{sums[0] / batches:.3f}", "acc": f"{sums[1] / batches:.1%}", "img/s": f"{rate:.0f}"}
        if self.bar is not None:
            self.bar.set_postfix(fields, refresh=False)
            self.bar.update(1)
        elif done % self.every == 0 or done == self.total:
            text = ", ".join(f"{k} {v}" for k, v in fields.items())
            print(f"epoch {self.epoch} [{done}/{self.total}] {text}, eta {eta:.0f}s", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_options(config: TrainConfig) -> None:
    if config.loss not in LOSSES:
        raise QAConvError(f"--loss must be one of {', '.join(LOSSES)}, got {config.loss!r}")
    if config.sampler not in SAMPLERS:
        raise QAConvError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {config.sampler!r}")
    if config.lr <= 0:
        raise QAConvError(f"--lr must be positive, got {config.lr}")
    if config.workers < 0:
        raise QAConvError(f"--workers must be >= 0, got {config.workers}")
    if config.accumulate < 1:
        raise QAConvError(f"--accumulate must be >= 1, got {config.accumulate}")


def evaluate_run(trainer: Trainer) -> dict[str, Any]:
    """Evaluate the trained model on every --testsets entry with the evaluator of `qaconv evaluate`."""
    c = trainer.config
    if not c.testsets:
        return {}
    from qaconv.engine.evaluate import EvalOptions, run_evaluation

    options = EvalOptions(
        batch_size=c.eval_batch,
        workers=c.workers,
        prob_block=c.prob_block,
        gal_block=c.gal_block,
        dtype=c.eval_dtype,
        rerank=c.rerank,
        tlift=c.tlift,
    )
    return run_evaluation(
        trainer.model,
        trainer.matcher,
        trainer.model_config,
        c.testsets,
        c.data_dir,
        trainer.out_dir,
        options,
        trainer.device,
    )
