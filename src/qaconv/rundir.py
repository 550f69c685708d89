"""The files of a run folder, named once: checkpoints, config, logs, results, pictures."""

from __future__ import annotations

import os
from pathlib import Path

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
CURVES = "training_curves.png"


class RunDir:
    """A run folder and the paths of its files (nothing is created until something writes them)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def checkpoint(self) -> Path:
        """The last finished epoch: what --resume continues and what evaluation uses by default."""
        return self.path / CHECKPOINT

    @property
    def best(self) -> Path:
        """The best epoch: the highest validation mAP when the run validates, else the lowest training loss."""
        return self.path / BEST

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics(self) -> Path:
        """One JSON line per finished epoch."""
        return self.path / METRICS

    @property
    def results(self) -> Path:
        """Evaluation results, one entry per test set."""
        return self.path / RESULTS

    @property
    def curves(self) -> Path:
        return self.path / CURVES

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def report(self) -> Path:
        return self.path / "report"

    @property
    def lock(self) -> Path:
        return self.path / ".lock"

    def run_files(self) -> list[Path]:
        """The files a training run writes (what --overwrite removes)."""
        return [self.checkpoint, self.best, self.config, self.metrics, self.results, self.curves]
