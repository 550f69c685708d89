"""Training curves: loss, accuracy and held-out Rank-1 / mAP per epoch, the learning-rate decay and the start of
graph sampling marked, as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BATCHES = {"pk": "P x K batches", "graph": "graph-sampled batches"}


def epochs_by_phase(history: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The trainer's per-epoch records grouped by phase, in order: the loss and the kind of batches they trained
    with, labelled like "pairwise (P x K batches)" (the graph sampler's warm-up, then graph sampling). A loss's
    values on P x K and on graph-sampled batches are not comparable: the latter hold the nearest classes."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for epoch in history:
        loss, batches = epoch.get("loss_name", ""), BATCHES.get(epoch.get("sampling", ""))
        groups.setdefault(f"{loss} ({batches})" if loss and batches else loss or batches or "", []).append(epoch)
    return groups


def validated(history: list[dict[str, Any]]) -> dict[str, list[tuple[int, dict[str, float]]]]:
    """{held-out set: [(epoch, {"rank1", "mAP"}), ...]} of the epochs that were validated."""
    sets: dict[str, list[tuple[int, dict[str, float]]]] = {}
    for h in history:
        for label, scores in h.get("val", {}).items():
            sets.setdefault(label, []).append((h["epoch"], scores))
    return sets


def plot_training_curves(history: list[dict[str, Any]], path: str | Path, margin: float | None = None) -> Path:
    """Plot `history` (the trainer's per-epoch records) to `path`: the loss, the batch-hard accuracy and, when
    the run validates, the held-out Rank-1 and mAP; the decay and the start of graph sampling are marked.
    `margin` draws the triplet margin, the loss of a model that has learned nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    held_out = validated(history)
    fig, axes = plt.subplots(1, 3 if held_out else 2, figsize=(13.5 if held_out else 9, 3.2))
    ax_loss, ax_acc = axes[0], axes[1]
    groups = epochs_by_phase(history)
    for name, part in groups.items():  # the warm-up and graph sampling get a series each
        ax_loss.plot([h["epoch"] for h in part], [h["loss"] for h in part], marker="o", label=name or None)
    if margin is not None:
        ax_loss.axhline(margin, color="tab:red", linestyle=":", linewidth=1, label=f"margin {margin:g}")
    if margin is not None or len(groups) > 1:
        ax_loss.legend(loc="best")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    ax_acc.plot(epochs, [100 * h["acc"] for h in history], marker="o", color="tab:green")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="batch-hard accuracy (training batches)")
    if held_out:
        ax_val = axes[2]
        for label, points in held_out.items():
            x = [epoch for epoch, _ in points]
            for key, style in (("rank1", "-"), ("mAP", "--")):
                name = "Rank-1" if key == "rank1" else key
                ax_val.plot(x, [100 * s[key] for _, s in points], style, marker="o", label=f"{label} {name}")
        ax_val.legend(loc="best", fontsize=7)
        ax_val.set(xlabel="epoch", ylabel="%", title="held-out Rank-1 and mAP")
    for h in history:
        for key, style in (("decayed", "--"), ("graph_sampling_from", ":")):
            if h.get(key):
                at = h["epoch"] + (0.5 if key == "graph_sampling_from" else 0)
                for ax in axes:
                    ax.axvline(at, color="grey", linestyle=style, linewidth=1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
