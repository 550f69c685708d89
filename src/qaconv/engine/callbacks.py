"""What happens around the training loop, one callback per concern.

`Checkpointer` writes best.pt and checkpoint.pt (in that order, so a kill between the two never leaves a
best.pt older than the best epoch the checkpoint knows of); `MetricsLog` then appends the epoch's line to
metrics.jsonl, which it rewrites from the checkpoint's history when a run starts or resumes (so a kill at
any moment leaves exactly one line per finished epoch). `TensorBoardLog`, `CurvePlot`, `ConsoleLog` and
`Progress` report. Only the main process of a distributed run gets callbacks.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

from qaconv.config import ModelConfig
from qaconv.engine.checkpoint import model_payload, save_checkpoint
from qaconv.folders import RUN, mark
from qaconv.io import atomic_write_text
from qaconv.rundir import RunDir


class Callback:
    """Hooks called by the Trainer; override the ones you need."""

    def on_fit_start(self, trainer: Any) -> None:
        """Before the first epoch of this call of fit() (also when resuming)."""

    def on_epoch_start(self, trainer: Any, epoch: int, total: int) -> None:
        """Before the first batch of `epoch` (1-based), which has `total` batches."""

    def on_batch_end(self, trainer: Any, done: int, sums: np.ndarray) -> None:
        """After batch `done` (1-based); `sums` = (loss sum, accuracy sum, batches, skipped) so far."""

    def on_epoch_end(self, trainer: Any, stats: dict[str, Any]) -> None:
        """After an epoch, with its statistics (already in trainer.history)."""

    def on_fit_end(self, trainer: Any) -> None:
        """When fit() returns or raises."""


class Checkpointer(Callback):
    """config.yaml at the start; best.pt (when the epoch is the best so far: by validation mAP when the run
    validates, else by its loss), then checkpoint.pt, every epoch."""

    def __init__(self, run_dir: RunDir, model_config: ModelConfig, config: dict[str, Any], save_config: Any) -> None:
        self.run_dir = run_dir
        self.model_config = model_config
        self.config = config
        self.save_config = save_config

    def on_fit_start(self, trainer: Any) -> None:
        self.run_dir.path.mkdir(parents=True, exist_ok=True)
        mark(self.run_dir.path, RUN)
        self.save_config(self.run_dir.config)

    def on_epoch_end(self, trainer: Any, stats: dict[str, Any]) -> None:
        payload = model_payload(
            trainer.model, trainer.matcher, self.model_config, config=self.config, **trainer.state_dict()
        )
        if stats["best"]:
            save_checkpoint(payload, self.run_dir.best)
        save_checkpoint(payload, self.run_dir.checkpoint)


class MetricsLog(Callback):
    """metrics.jsonl: one JSON line per finished epoch, consistent with checkpoint.pt after any interruption."""

    def __init__(self, run_dir: RunDir) -> None:
        self.path = run_dir.metrics

    def on_fit_start(self, trainer: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, "".join(json.dumps(stats) + "\n" for stats in trainer.history))

    def on_epoch_end(self, trainer: Any, stats: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(stats) + "\n")


class TensorBoardLog(Callback):
    """Scalars per epoch under run_dir/tensorboard (when tensorboard is installed); a resumed run first
    drops the events of epochs it repeats."""

    KEYS = ("loss", "acc", "images_per_s", "graph_seconds")

    def __init__(self, run_dir: RunDir) -> None:
        self.folder = run_dir.tensorboard
        self.writer: Any = None

    def on_fit_start(self, trainer: Any) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.writer = SummaryWriter(str(self.folder), purge_step=trainer.epoch + 1 if trainer.epoch else None)

    def on_epoch_end(self, trainer: Any, stats: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key in self.KEYS:
            self.writer.add_scalar(f"train/{key}", stats[key], stats["epoch"])
        self.writer.add_scalar("train/lr", stats["lr"][-1], stats["epoch"])
        for label, scores in stats.get("val", {}).items():
            for key, value in scores.items():
                self.writer.add_scalar(f"val/{label}/{key}", value, stats["epoch"])
        self.writer.flush()

    def on_fit_end(self, trainer: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class CurvePlot(Callback):
    """training_curves.png: loss and accuracy per epoch, redrawn after every epoch."""

    def __init__(self, run_dir: RunDir, margin: float | None = None) -> None:
        self.path = run_dir.curves
        self.margin = margin

    def on_epoch_end(self, trainer: Any, stats: dict[str, Any]) -> None:
        from qaconv.viz.curves import plot_training_curves

        plot_training_curves(trainer.history, self.path, margin=self.margin)


class ConsoleLog(Callback):
    """One line per epoch on stdout (with the held-out Rank-1 / mAP when the epoch was validated), and a line
    when the loss changes or graph sampling starts."""

    def on_epoch_end(self, trainer: Any, stats: dict[str, Any]) -> None:
        # compat(0.2) loss-name
        previous = trainer.history[-2].get("loss_name") if len(trainer.history) > 1 else None
        if previous and stats.get("loss_name") != previous:
            print(f"epoch {stats['epoch']} trained with the {stats['loss_name']} loss (epochs before: {previous})")
        held_out = "".join(
            f", {label} Rank-1 {s['rank1']:.1%} mAP {s['mAP']:.1%}" for label, s in stats.get("val", {}).items()
        )
        print(
            f"epoch {stats['epoch']}: loss {stats['loss']:.3f}, acc {stats['acc']:.1%}{held_out}, "
            f"{stats['images_per_s']:.0f} img/s, graph {stats['graph_seconds']:.1f}s, "
            f"lr {stats['lr'][-1]:.2e}" + (f", skipped {stats['skipped']}" if stats["skipped"] else ""),
            flush=True,
        )
        if "warmup_ended" in stats:
            print(
                f"graph sampling starts at epoch {stats['graph_sampling_from']}: the P x K warm-up ended after epoch "
                f"{stats['epoch']} ({stats['warmup_ended']})",
                flush=True,
            )
        if "warmup_unfinished" in stats:
            print(
                f"graph sampling did not start: the run ended in its P x K warm-up ({stats['warmup_unfinished']}), "
                "so it trained on random P x K batches only; with more epochs (--resume with a larger --max-epochs) "
                "it switches when the accuracy gets there (docs/training.md#the-automatic-warm-up)",
                flush=True,
            )


class Progress(Callback):
    """A tqdm bar on a terminal; otherwise a plain line every tenth of the epoch."""

    def __init__(self, tty: bool | None = None) -> None:
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.bar: Any = None

    def on_epoch_start(self, trainer: Any, epoch: int, total: int) -> None:
        self.epoch, self.total, self.start = epoch, total, time.perf_counter()
        self.images = trainer.loader.batch_size * trainer.ctx.world_size
        self.every = max(1, total // 10)
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"epoch {epoch}", leave=False)

    def on_batch_end(self, trainer: Any, done: int, sums: np.ndarray) -> None:
        batches = max(sums[2], 1)
        elapsed = time.perf_counter() - self.start
        rate = done * self.images / max(elapsed, 1e-9)
        fields = {"loss": f"{sums[0] / batches:.3f}", "acc": f"{sums[1] / batches:.1%}", "img/s": f"{rate:.0f}"}
        if self.bar is not None:
            self.bar.set_postfix(fields, refresh=False)
            self.bar.update(1)
        elif done % self.every == 0 or done == self.total:
            eta = elapsed / done * (self.total - done)
            text = ", ".join(f"{k} {v}" for k, v in fields.items())
            print(f"epoch {self.epoch} [{done}/{self.total}] {text}, eta {eta:.0f}s", flush=True)

    def on_epoch_end(self, trainer: Any, stats: dict[str, Any]) -> None:
        self.on_fit_end(trainer)

    def on_fit_end(self, trainer: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
