"""Graph Sampling vs P x K sampling under the same training-time budget, on synthetic data.

Trains the demo's model (`qaconv.commands.demo.demo_config`: ResNet-18 IBN-b from random weights at
128 x 64) on synthetic style A with the GraphSampler and with the PKSampler, for the same number of
training seconds, several seeds each, and evaluates on the unseen style B (Rank-1, mAP) at evenly
spaced points of the budget. Evaluation time is not counted. The GS graph (representative extraction
and all-pairs QAConv scoring) is part of training and is counted.

The epochs are driven here, not by `Trainer.fit`: every epoch is capped at `--iters-per-epoch`
iterations (a P x K epoch of 150 classes with P = 16 is 10 iterations anyway; a GS epoch would be 150),
so GS rebuilds its graph every `--iters-per-epoch` iterations with the current weights. The learning rate
is constant (no decay) for both samplers. Runs are interleaved (GS and PK of a seed back to back, the
order alternating per seed) so that load from other jobs on a shared machine hits both alike.

Besides the metrics, every epoch records how hard the batches were: the batch-hard triplet accuracy
on the training batches, and how many pairs of near-twin classes ("family" siblings, see
qaconv.data.synthetic) each batch held; for GS also the graph's sibling recall (the fraction of a
class's siblings among its P - 1 neighbours; a random graph gets (P - 1) / (C - 1)) and its hubs.

    python -m benchmarks.gs_vs_pk            # 3 seeds x 2 samplers x 120 s, about 15 min on 2 cores
    python -m benchmarks.gs_vs_pk --quick    # 1 seed x 2 samplers x 40 s, about 3 min

Writes benchmarks/results/gs_vs_pk.json (one row per run and evaluation point) and the plot
(docs/gs_vs_pk.png, or <out>/gs_vs_pk-quick.png with --quick); docs/reproduction.md discusses it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import save
from qaconv.commands.demo import demo_config, ensure_data
from qaconv.data import open_dataset
from qaconv.engine.evaluate import EvalOptions, evaluate_maps
from qaconv.engine.features import extract_feature_maps
from qaconv.engine.train import Trainer

ROOT = Path(__file__).resolve().parent.parent
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
SAMPLERS = ("gs", "pk")


# ---------------------------------------------------------------------------------------------- families


def sibling_matrix(train_records: list[Any], meta_path: Path) -> np.ndarray:
    """[C, C] bool: classes (sampler positions, sorted relabelled pids) that are near-twin siblings."""
    families = json.loads(meta_path.read_text())["families"]
    family_of = {pid: f for f, members in enumerate(families) for pid in members}
    original = {}
    for record in train_records:  # file names start with the original 4-digit pid
        original.setdefault(record.pid, int(os.path.basename(record.path)[:4]))
    fam = np.array([family_of.get(original[c], -1 - c) for c in sorted(original)])
    same = fam[:, None] == fam[None, :]
    np.fill_diagonal(same, False)
    return same


def sibling_pairs_per_batch(batch_classes: np.ndarray, siblings: np.ndarray) -> float:
    """Mean number of sibling class pairs inside the given batches ([batches, P] class positions)."""
    inside = siblings[batch_classes[:, :, None], batch_classes[:, None, :]]
    return float(inside.sum(axis=(1, 2)).mean() / 2)


def graph_stats(neighbors: np.ndarray, frequency: np.ndarray, siblings: np.ndarray) -> dict[str, float]:
    """Sibling recall of a GS graph (and what a random graph gets) and how concentrated its hubs are."""
    num, k = neighbors.shape
    has = siblings.sum(axis=1)
    found = siblings[np.arange(num)[:, None], neighbors].sum(axis=1)
    return {
        "sibling_recall": float(found[has > 0].sum() / has.sum()),
        "sibling_recall_random": k / (num - 1),
        "hub_max_batches": int(frequency.max()),
        "never_neighbour": float((frequency == 1).mean()),
    }


# -------------------------------------------------------------------------------------------- evaluation


class StyleBEvaluator:
    """Rank-1 and mAP of a model on the test split of the unseen style (float32, raw QAConv scores)."""

    def __init__(self, folder: Path, config: Any, workers: int) -> None:
        self.dataset = open_dataset(str(folder))
        self.config = config
        self.workers = workers
        self.options = EvalOptions(dtype="float32", workers=workers, batch_size=config.eval_batch)

    def __call__(self, trainer: Trainer) -> dict[str, float]:
        c, ds = self.config, self.dataset
        kw = dict(height=c.height, width=c.width, batch_size=c.eval_batch, num_workers=self.workers)
        q_maps = extract_feature_maps(trainer.model, ds.query, device=trainer.device, **kw)
        g_maps = extract_feature_maps(trainer.model, ds.gallery, device=trainer.device, **kw)
        result = evaluate_maps(
            trainer.matcher,
            q_maps,
            g_maps,
            [r.pid for r in ds.query],
            [r.camid for r in ds.query],
            [r.pid for r in ds.gallery],
            [r.camid for r in ds.gallery],
            options=self.options,
            device=trainer.device,
        ).metrics["raw"]
        return {"rank1": result.rank(1), "mAP": float(result.mAP)}


# ---------------------------------------------------------------------------------------------- one run


def train_with_budget(
    config: Any,
    budget: float,
    points: int,
    clock: str,
    evaluate: StyleBEvaluator,
    siblings: np.ndarray,
) -> list[dict[str, Any]]:
    """Train `budget` seconds (on `clock`) and evaluate at 0 and after each budget / points seconds."""
    tick = CLOCKS[clock]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, tmp, quiet=True)
        rows = [{"train_s": 0.0, "wall_s": 0.0, "cpu_s": 0.0, "iterations": 0, **evaluate(trainer)}]
        spent = {"train_s": 0.0, "wall_s": 0.0, "cpu_s": 0.0, "graph_s": 0.0}
        iterations, epoch, targets = 0, 0, [budget * (i + 1) / points for i in range(points)]
        window: list[dict[str, float]] = []  # epochs since the last evaluation
        while spent["train_s"] < budget:
            epoch += 1
            start = {"train_s": tick(), "wall_s": time.perf_counter(), "cpu_s": time.process_time()}
            stats = trainer.train_epoch(epoch)
            ends = {"train_s": tick(), "wall_s": time.perf_counter(), "cpu_s": time.process_time()}
            for key in start:
                spent[key] += ends[key] - start[key]
            spent["graph_s"] += stats["graph_seconds"]
            iterations += stats["batches"]
            used = trainer.sampler.last_batch_classes[: stats["batches"]]
            entry = {"loss": stats["loss"], "train_acc": stats["acc"]}
            entry["sibling_pairs"] = sibling_pairs_per_batch(used, siblings)
            if config.sampler == "gs":
                graph = graph_stats(trainer.sampler.last_neighbors, trainer.sampler.class_frequency(), siblings)
                entry.update(graph)
            window.append(entry)
            if spent["train_s"] >= targets[0] or spent["train_s"] >= budget:
                while targets and spent["train_s"] >= targets[0]:
                    targets.pop(0)
                row = {**spent, "iterations": iterations, "epochs": epoch, **evaluate(trainer)}
                row.update({key: float(np.mean([w[key] for w in window])) for key in window[0]})
                rows.append(row)
                window = []
    return rows


# ---------------------------------------------------------------------------------------------- summary


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per sampler and evaluation point: mean, min and max over seeds of the metrics and times."""
    out = []
    for sampler in SAMPLERS:
        mine = [r for r in rows if r["sampler"] == sampler]
        for point in sorted({r["point"] for r in mine}):
            at = [r for r in mine if r["point"] == point]
            entry: dict[str, Any] = {"sampler": sampler, "point": point, "seeds": len(at)}
            for key in ("train_s", "iterations", "rank1", "mAP", "train_acc", "sibling_pairs", "sibling_recall"):
                values = [r[key] for r in at if key in r]
                if values:
                    entry[key] = (float(np.mean(values)), float(np.min(values)), float(np.max(values)))
            out.append(entry)
    return out


def markdown_table(summary: list[dict[str, Any]]) -> str:
    """The summary as the Markdown table of docs/reproduction.md (percentages, mean [min, max])."""

    def spread(entry: dict[str, Any], key: str, scale: float = 100.0, digits: int = 1) -> str:
        if key not in entry:
            return "-"
        mean, low, high = (scale * v for v in entry[key])
        return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    lines = [
        "| sampler | point | train s | iterations | Rank-1 % | mAP % | train acc % | sibling pairs / batch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in summary:
        lines.append(
            f"| {e['sampler'].upper()} | {e['point']} | {e['train_s'][0]:.0f} | {e['iterations'][0]:.0f} "
            f"| {spread(e, 'rank1')} | {spread(e, 'mAP')} | {spread(e, 'train_acc')} "
            f"| {spread(e, 'sibling_pairs', 1.0, 2)} |"
        )
    return "\n".join(lines)


def plot(summary: list[dict[str, Any]], path: Path, title: str) -> None:
    """Rank-1 and mAP on the unseen style against training seconds: mean line, min-max band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colours = {"gs": "tab:blue", "pk": "tab:orange"}
    names = {"gs": "Graph Sampling", "pk": "P x K"}
    for ax, key, label in zip(axes, ("rank1", "mAP"), ("Rank-1 (%)", "mAP (%)"), strict=True):
        for sampler in SAMPLERS:
            mine = [e for e in summary if e["sampler"] == sampler]
            x = [e["train_s"][0] for e in mine]
            mean, low, high = (np.array([100 * e[key][i] for e in mine]) for i in range(3))
            ax.plot(x, mean, marker="o", color=colours[sampler], label=f"{names[sampler]} (mean)")
            ax.fill_between(x, low, high, color=colours[sampler], alpha=0.2, label=f"{names[sampler]} (min-max)")
        ax.set_xlabel("training seconds (evaluation excluded)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed, 40 s per run, 160 identities (~3 min)")
    parser.add_argument("--budget", type=float, help="training seconds per run (default 120; --quick 40)")
    parser.add_argument("--seeds", help="comma-separated training seeds (default 0,1,2; --quick 0)")
    parser.add_argument("--points", type=int, help="evaluations after the start (default 4; --quick 2)")
    parser.add_argument("--iters-per-epoch", type=int, default=10, help="iterations per epoch (GS graph refresh)")
    parser.add_argument("--ids", type=int, help="identities per style, half for training (default 300; --quick 160)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="clock of the budget (cpu: process)")
    parser.add_argument("--workers", type=int, default=0, help="data loading processes (0: in-process)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "gs_vs_pk"), help="folder for the synthetic data")
    parser.add_argument("--plot", help="PNG path (default docs/gs_vs_pk.png; --quick <out>/gs_vs_pk-quick.png)")
    args = parser.parse_args()
    budget = args.budget or (40.0 if args.quick else 120.0)
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    points = args.points or (2 if args.quick else 4)
    num_ids = args.ids or (160 if args.quick else 300)
    out = Path(args.out)
    data = out / f"ids{num_ids}"
    plot_path = (
        Path(args.plot) if args.plot else (out / "gs_vs_pk-quick.png" if args.quick else ROOT / "docs" / "gs_vs_pk.png")
    )

    ensure_data(data, num_ids, seed=0)
    base = demo_config(data, quick=False, device="cpu", workers=args.workers, seed=0)
    base = dataclasses.replace(base, max_iters_per_epoch=args.iters_per_epoch)
    evaluate = StyleBEvaluator(data / "data" / "synth-B", base, args.workers)
    train = open_dataset(base.dataset).train
    siblings = sibling_matrix(train, data / "data" / "synth-A" / "meta.json")
    print(
        f"{len(train)} training images, {siblings.shape[0]} classes ({int(siblings.any(axis=1).sum())} with a "
        f"near-twin sibling); budget {budget:.0f} s ({args.clock} clock), seeds {seeds}, {torch.get_num_threads()} "
        "threads",
        flush=True,
    )
    rows = []
    for n, seed in enumerate(seeds):
        for sampler in SAMPLERS if n % 2 == 0 else SAMPLERS[::-1]:
            config = dataclasses.replace(base, sampler=sampler, seed=seed)
            start = time.perf_counter()
            run_rows = train_with_budget(config, budget, points, args.clock, evaluate, siblings)
            for point, row in enumerate(run_rows):
                rows.append({"sampler": sampler, "seed": seed, "point": point, **row})
            last = run_rows[-1]
            print(
                f"{sampler} seed {seed}: {last['iterations']} iterations, Rank-1 {100 * last['rank1']:.1f}%, "
                f"mAP {100 * last['mAP']:.1f}% ({time.perf_counter() - start:.0f} s with evaluation)",
                flush=True,
            )
    summary = summarise(rows)
    print(markdown_table(summary))
    plot(
        summary,
        plot_path,
        f"train synthetic style A ({siblings.shape[0]} ids), test unseen style B; ResNet-18 IBN-b from scratch, "
        f"B=32, K=2; {len(seeds)} seed(s)",
    )
    save(
        "gs_vs_pk",
        rows,
        notes=f"{'quick' if args.quick else 'full'}: {num_ids} ids per style, budget {budget:.0f} s on the "
        f"{args.clock} clock per run, {points} evaluations, {args.iters_per_epoch} iterations per epoch (GS graph "
        f"refresh), constant lr {base.lr}, batch {base.batch_size}, K {base.num_instances}, seeds {seeds}; "
        "rank1/mAP on the unseen style B test split; train_acc, sibling_pairs (near-twin class pairs per "
        "training batch) and GS graph stats are means over the epochs since the previous evaluation.",
    )
    print(f"plot: {plot_path}")


if __name__ == "__main__":
    main()
