"""Training curves: loss and accuracy per epoch, with the learning-rate decay marked, as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def epochs_by_loss(history: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The trainer's per-epoch records grouped by the loss they trained with, in order of first use (a
    --warmup-loss first, then the run's loss)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for epoch in history:
        groups.setdefault(epoch.get("loss_name", ""), []).append(epoch)
    return groups


def plot_training_curves(history: list[dict[str, Any]], path: str | Path, margin: float | None = None) -> Path:
    """Plot `history` (the trainer's per-epoch records) to `path`; `margin` draws the triplet margin, the
    loss of a model that has learned nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
    groups = epochs_by_loss(history)
    for name, part in groups.items():  # a warm-up loss (--warmup-loss) gets its own series
        ax_loss.plot([h["epoch"] for h in part], [h["loss"] for h in part], marker="o", label=name or None)
    if margin is not None:
        ax_loss.axhline(margin, color="tab:red", linestyle=":", linewidth=1, label=f"margin {margin:g}")
    if margin is not None or len(groups) > 1:
        ax_loss.legend(loc="best")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    ax_acc.plot(epochs, [100 * h["acc"] for h in history], marker="o", color="tab:green")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="batch-hard accuracy")
    for h in history:
        if h.get("decayed"):
            for ax in (ax_loss, ax_acc):
                ax.axvline(h["epoch"], color="grey", linestyle="--", linewidth=1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
