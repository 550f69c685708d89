"""Training curves: loss and accuracy per epoch, with the learning-rate decay marked, as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_training_curves(history: list[dict[str, Any]], path: str | Path, margin: float | None = None) -> Path:
    """Plot `history` (the trainer's per-epoch records) to `path`; `margin` draws the triplet margin, the
    loss of a model that has learned nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
    names = list(dict.fromkeys(h.get("loss_name", "") for h in history))
    for name in names:  # a warm-up loss (--warmup-loss) gets its own series
        part = [h for h in history if h.get("loss_name", "") == name]
        ax_loss.plot([h["epoch"] for h in part], [h["loss"] for h in part], marker="o", label=name or None)
    if margin is not None:
        ax_loss.axhline(margin, color="tab:red", linestyle=":", linewidth=1, label=f"margin {margin:g}")
    if margin is not None or len(names) > 1:
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
