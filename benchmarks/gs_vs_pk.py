"""Graph Sampling vs P x K sampling under the same training budget, on synthetic data.

Trains the demo's model (`qaconv.commands.demo.demo_config`: ResNet-18 IBN-b from random weights at
128 x 64, B = 32, K = 2, so 16 classes per batch) on synthetic style A with the GraphSampler and with the
PKSampler, several seeds each, for the same training budget, and evaluates Rank-1 and mAP on the unseen
style B at the start and after every budget / --points. Evaluation is not counted. The GS graph (one
representative image per class embedded, all class pairs scored with QAConv) is part of GS's training
and is counted. The learning rate is constant for both samplers (no decay).

One torch thread by default: on a 2-core machine shared with other jobs, 2-thread kernels stall whenever
another job holds a core (measured 2.5-3.5 s per iteration against 0.4 s with one thread).

Budget (`--clock`):
- `iters` (default): training iterations, with each GS graph charged as `graph seconds / iteration
  seconds` iterations (measured at the start from a few short GS epochs, or --graph-cost). An iteration
  costs the same with either sampler (same batch size, same model), so this is "the same training time"
  without depending on what else runs on a shared CPU, where one process's speed swings 3-6x within minutes
  and a wall-clock budget would compare the neighbours' load rather than the samplers.
- `wall`: measured wall-clock seconds of training (for a dedicated machine). Epochs are --iters-per-epoch
  long and a run evaluates after the first epoch that ends past each point.

With the iteration clock, each segment between two evaluations is one GS epoch (one graph, then as many
iterations as fit in the rest of the segment; a real GS epoch has one iteration per class, 150 here) and
P x K epochs of one pass over the classes. Runs are interleaved (GS and PK of a seed back to back, the
order alternating per seed). `--samplers gs,pk,gs-random` adds a control: GS's batch structure (each
class anchors a batch of itself and P - 1 others, one "graph" per segment, charged like GS's) with random
neighbours instead of the nearest classes, which separates the hard neighbours from everything else.

Each segment also records how hard the batches were: the batch-hard triplet accuracy on the training
batches, how many pairs of near-twin classes ("family" siblings, see qaconv.data.synthetic) a batch held,
and how many distinct classes the segment's batches covered; for GS also the graph's sibling recall (the
fraction of a class's siblings among its P - 1 neighbours; a random graph gets (P - 1) / (C - 1)) and its
largest hub (batches that class is in, out of C; the mean is P) and the share of batch places taken by the
10% most frequent classes.

    python -m benchmarks.gs_vs_pk            # 3 seeds x 2 samplers x 250 iterations: ~13 min
    python -m benchmarks.gs_vs_pk --quick    # 1 seed x 2 samplers x 80 iterations, 160 identities: ~2 min

Writes benchmarks/results/gs_vs_pk.json (one row per run and evaluation point) and the plot
(docs/gs_vs_pk.png, or <out>/gs_vs_pk-quick.png with --quick); docs/reproduction.md discusses the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import machine, save
from qaconv.commands.demo import demo_config, ensure_data
from qaconv.config import TrainConfig
from qaconv.data import open_dataset
from qaconv.data.samplers import GraphSampler
from qaconv.engine.checkpoint import state_fingerprint
from qaconv.engine.evaluate import EvalOptions, evaluate_dataset
from qaconv.engine.features import extract_feature_maps
from qaconv.engine.train import Trainer

ROOT = Path(__file__).resolve().parent.parent
SAMPLERS = ("gs", "pk", "gs-random")
NAMES = {"gs": "Graph Sampling", "pk": "P x K", "gs-random": "GS, random graph"}
COLOURS = {"gs": "tab:blue", "pk": "tab:orange", "gs-random": "tab:green"}


# ---------------------------------------------------------------------------------------------- families


def sibling_matrix(train_records: list[Any], meta_path: Path) -> np.ndarray:
    """[C, C] bool: classes (sampler positions = sorted relabelled pids) that are near-twin siblings."""
    families = json.loads(meta_path.read_text())["families"]
    family_of = {pid: f for f, members in enumerate(families) for pid in members}
    original = {}
    for record in train_records:  # file names start with the original 4-digit pid
        original.setdefault(record.pid, int(os.path.basename(record.path)[:4]))
    family = np.array([family_of.get(original[c], -1 - c) for c in sorted(original)])
    same = family[:, None] == family[None, :]
    np.fill_diagonal(same, False)
    return same


def batch_stats(batch_classes: np.ndarray, siblings: np.ndarray) -> dict[str, float]:
    """Sibling class pairs per batch and distinct classes covered, for [batches, P] class positions."""
    inside = siblings[batch_classes[:, :, None], batch_classes[:, None, :]]
    return {"sibling_pairs": float(inside.sum(axis=(1, 2)).mean() / 2), "classes": len(np.unique(batch_classes))}


def graph_stats(neighbors: np.ndarray, frequency: np.ndarray, siblings: np.ndarray) -> dict[str, float]:
    """Sibling recall of a GS graph (and of a random one), the batches of its largest hub, and the share of
    all batch places that go to the 10% most frequent classes (0.1 if every class had as many)."""
    num, k = neighbors.shape
    found = siblings[np.arange(num)[:, None], neighbors].sum()
    top = np.sort(frequency)[::-1][: max(1, num // 10)]
    return {
        "sibling_recall": float(found / siblings.sum()),
        "sibling_recall_random": k / (num - 1),
        "hub_batches": int(frequency.max()),
        "hub_top10_share": float(top.sum() / frequency.sum()),
    }


# -------------------------------------------------------------------------------------------- evaluation


class StyleBEvaluator:
    """Rank-1 and mAP on the test split of the unseen style (float32, raw QAConv scores), cached by weights
    (the runs of one seed start from the same ones)."""

    def __init__(self, folder: Path, config: TrainConfig) -> None:
        self.dataset = open_dataset(str(folder))
        self.config = config
        self.options = EvalOptions(dtype="float32", workers=config.workers, batch_size=config.eval_batch)
        self.cache: dict[str, dict[str, float]] = {}

    def __call__(self, trainer: Trainer) -> dict[str, float]:
        key = state_fingerprint(trainer.model, trainer.matcher)
        if key not in self.cache:
            self.cache[key] = self._evaluate(trainer)
        return self.cache[key]

    def _evaluate(self, trainer: Trainer) -> dict[str, float]:
        c, ds = self.config, self.dataset
        kw = dict(height=c.height, width=c.width, batch_size=c.eval_batch, num_workers=c.workers)
        q_maps = extract_feature_maps(trainer.model, ds.query, device=trainer.device, **kw)
        g_maps = extract_feature_maps(trainer.model, ds.gallery, device=trainer.device, **kw)
        result = evaluate_dataset(trainer.matcher, q_maps, g_maps, ds, options=self.options, device=trainer.device)
        result = result.metrics["raw"]
        return {"rank1": result.rank(1), "mAP": float(result.mAP)}


# ------------------------------------------------------------------------------------------------ budget


@dataclasses.dataclass
class Clock:
    """What an epoch costs: `iters` counts training iterations plus `graph_cost` iterations per GS graph,
    `wall` counts measured seconds."""

    kind: str
    graph_cost: float = 0.0

    def cost(self, stats: dict[str, Any], wall: float, graph: bool) -> float:
        if self.kind == "wall":
            return wall
        return stats["batches"] + (self.graph_cost if graph else 0.0)

    def iterations(self, budget: float, with_graph: bool) -> int:
        """Training iterations that fit in `budget` of the iteration clock (at least one)."""
        return max(1, round(budget - (self.graph_cost if with_graph else 0.0)))


def calibrate(config: TrainConfig, repeats: int = 3, iterations: int = 3) -> tuple[float, float]:
    """(seconds per training iteration, seconds per GS graph): medians over a few short GS epochs, which
    see the same load from other jobs, so their ratio holds on a busy machine."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(dataclasses.replace(config, sampler="gs", max_iters_per_epoch=iterations), tmp, quiet=True)
        epochs = [trainer.train_epoch(e + 1) for e in range(repeats)]
    iter_s = float(np.median([(s["seconds"] - s["graph_seconds"]) / s["batches"] for s in epochs]))
    return iter_s, float(np.median([s["graph_seconds"] for s in epochs]))


# ---------------------------------------------------------------------------------------------- one run


def run_epoch(trainer: Trainer, epoch: int, cap: int) -> tuple[dict[str, Any], float]:
    """Train one epoch of at most `cap` iterations; returns its statistics and wall seconds."""
    trainer.config = dataclasses.replace(trainer.config, max_iters_per_epoch=cap)
    start = time.perf_counter()
    stats = trainer.train_epoch(epoch)
    return stats, time.perf_counter() - start


def random_neighbors_fn(seed: int) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """A GS neighbour table of k random other classes per class, redrawn every epoch (the control)."""
    rng = np.random.default_rng(seed)

    def neighbors(sample_indices: torch.Tensor, k: int) -> torch.Tensor:
        keys = rng.random((len(sample_indices), len(sample_indices)))
        np.fill_diagonal(keys, np.inf)
        return torch.from_numpy(np.argsort(keys, axis=1)[:, :k])

    return neighbors


def train_with_budget(
    variant: str,
    config: TrainConfig,
    budget: float,
    points: int,
    clock: Clock,
    iters_per_epoch: int,
    evaluate: StyleBEvaluator,
    siblings: np.ndarray,
) -> list[dict[str, Any]]:
    """Train `variant` (gs, pk or gs-random) for `budget` of `clock`, evaluating at the start and after each
    budget / points. gs-random is GS with a random graph, charged what a real graph costs."""
    config = dataclasses.replace(config, sampler="pk" if variant == "pk" else "gs")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, tmp, quiet=True)
        is_gs = variant != "pk"
        if variant == "gs-random":
            labels = [r.pid for r in trainer.records]
            kw = dict(batch_size=config.batch_size, num_instances=config.num_instances, seed=config.seed)
            trainer.sampler = GraphSampler(labels, random_neighbors_fn(config.seed), **kw)
        rows = [{"train_s": 0.0, "wall_s": 0.0, "graph_s": 0.0, "iterations": 0, "epochs": 0, **evaluate(trainer)}]
        spent, wall, graph, iterations, epoch = 0.0, 0.0, 0.0, 0, 0
        for point in range(1, points + 1):
            target = budget * point / points
            segment: list[dict[str, Any]] = []
            used: list[np.ndarray] = []
            todo = clock.iterations(target - spent, is_gs) if clock.kind == "iters" else 0
            while (todo > 0) if clock.kind == "iters" else (spent < target):
                epoch += 1
                # iteration clock: one GS graph per segment (unless it outlasts a GS epoch); P x K epochs of one pass
                cap = iters_per_epoch if clock.kind == "wall" else min(todo, len(trainer.sampler))
                stats, seconds = run_epoch(trainer, epoch, cap)
                spent += clock.cost(stats, seconds, is_gs)
                wall += seconds
                graph += stats["graph_seconds"]
                iterations += stats["batches"]
                todo -= stats["batches"]
                used.append(trainer.sampler.last_batch_classes[: stats["batches"]])
                entry = {"loss": stats["loss"], "train_acc": stats["acc"]}
                if is_gs:
                    frequency = trainer.sampler.class_frequency()
                    entry.update(graph_stats(trainer.sampler.last_neighbors, frequency, siblings))
                segment.append(entry)
            row = {"train_s": spent, "wall_s": wall, "graph_s": graph, "iterations": iterations, "epochs": epoch}
            row.update(evaluate(trainer))
            row.update({key: float(np.mean([s[key] for s in segment])) for key in segment[0]})
            row.update(batch_stats(np.concatenate(used), siblings))
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- summary


SUMMARY_KEYS = ("train_s", "iterations", "rank1", "mAP", "train_acc", "sibling_pairs", "classes", "sibling_recall")


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per sampler and evaluation point: (mean, min, max) over seeds of the metrics and times."""
    out = []
    for sampler in dict.fromkeys(r["sampler"] for r in rows):
        mine = [r for r in rows if r["sampler"] == sampler]
        for point in sorted({r["point"] for r in mine}):
            at = [r for r in mine if r["point"] == point]
            entry: dict[str, Any] = {"sampler": sampler, "point": point, "seeds": len(at)}
            for key in SUMMARY_KEYS:
                values = [r[key] for r in at if key in r]
                if values:
                    entry[key] = (float(np.mean(values)), float(np.min(values)), float(np.max(values)))
            out.append(entry)
    return out


def markdown_table(summary: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table: mean [min, max] over seeds, percentages for the metrics."""

    def spread(entry: dict[str, Any], key: str, scale: float = 100.0, digits: int = 1) -> str:
        if key not in entry:
            return "-"
        mean, low, high = (scale * v for v in entry[key])
        return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    lines = [
        "| sampler | train s | iterations | Rank-1 % | mAP % | train acc % | sibling pairs / batch | "
        "classes seen | GS sibling recall % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in summary:
        lines.append(
            f"| {e['sampler'].upper()} | {e['train_s'][0]:.0f} | {e['iterations'][0]:.0f} | {spread(e, 'rank1')} "
            f"| {spread(e, 'mAP')} | {spread(e, 'train_acc')} | {spread(e, 'sibling_pairs', 1.0, 2)} "
            f"| {spread(e, 'classes', 1.0, 0)} | {spread(e, 'sibling_recall')} |"
        )
    return "\n".join(lines)


def plot(summary: list[dict[str, Any]], path: Path, title: str, xlabel: str) -> None:
    """Rank-1 and mAP on the unseen style against training seconds: mean line, min-max band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in zip(axes, ("rank1", "mAP"), ("Rank-1 on unseen style B (%)", "mAP (%)"), strict=True):
        for sampler in dict.fromkeys(e["sampler"] for e in summary):
            mine = [e for e in summary if e["sampler"] == sampler]
            x = [e["train_s"][0] for e in mine]
            mean, low, high = (np.array([100 * e[key][i] for e in mine]) for i in range(3))
            ax.plot(x, mean, marker="o", color=COLOURS[sampler], label=f"{NAMES[sampler]}: mean")
            ax.fill_between(x, low, high, color=COLOURS[sampler], alpha=0.2, label=f"{NAMES[sampler]}: min-max")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------- main


def save_to(path: Path, rows: list[dict[str, Any]], notes: str) -> None:
    """`benchmarks.common.save`'s file, written to `path` (for experiments beside the recorded one)."""
    payload = {"benchmark": "gs_vs_pk", "machine": machine(), "date": datetime.date.today().isoformat(), "notes": notes}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**payload, "rows": rows}, indent=2) + "\n")
    print(f"rows: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="one seed, 2 points, 160 identities, an 80-iteration budget"
    )
    parser.add_argument("--clock", choices=("iters", "wall"), default="iters", help="how training time is counted")
    parser.add_argument("--budget", type=float, help="per run: iterations (default 200, --quick 30) or wall seconds")
    parser.add_argument(
        "--graph-cost", type=float, help="iters clock: iterations one GS graph costs (default: measured)"
    )
    parser.add_argument("--samplers", default="gs,pk", help="comma-separated: gs, pk, gs-random (control)")
    parser.add_argument("--seeds", help="comma-separated training seeds (default 0,1,2; --quick 0)")
    parser.add_argument("--points", type=int, help="evaluations after the start (default 4; --quick 2)")
    parser.add_argument("--ids", type=int, help="identities per style, half for training (default 300; --quick 160)")
    parser.add_argument("--iters-per-epoch", type=int, default=10, help="wall clock: iterations per epoch")
    parser.add_argument("--workers", type=int, default=0, help="data loading processes (0: in-process)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared CPU)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "gs_vs_pk"), help="folder for the synthetic data")
    parser.add_argument("--results", help="write the rows to this JSON file instead of benchmarks/results/")
    parser.add_argument("--plot", help="PNG path (default docs/gs_vs_pk.png; --quick <out>/gs_vs_pk-quick.png)")
    args = parser.parse_args()
    wall = args.clock == "wall"
    budget = args.budget or ((40.0 if args.quick else 120.0) if wall else (80.0 if args.quick else 250.0))
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    if not samplers or set(samplers) - set(SAMPLERS):
        parser.error(f"--samplers: choose from {', '.join(SAMPLERS)}")
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    points = args.points or (2 if args.quick else 4)
    num_ids = args.ids or (160 if args.quick else 300)
    out = Path(args.out)
    data = out / f"ids{num_ids}"
    default_plot = out / "gs_vs_pk-quick.png" if args.quick else ROOT / "docs" / "gs_vs_pk.png"
    plot_path = Path(args.plot) if args.plot else default_plot

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    ensure_data(data, num_ids, seed=0)
    base = demo_config(data, quick=False, device="cpu", workers=args.workers, seed=0)
    evaluate = StyleBEvaluator(data / "data" / "synth-B", base)
    train = open_dataset(base.dataset).train
    siblings = sibling_matrix(train, data / "data" / "synth-A" / "meta.json")
    iter_s, graph_s = calibrate(base)
    clock = Clock(args.clock, graph_cost=graph_s / iter_s if args.graph_cost is None else args.graph_cost)
    timing = f"measured {iter_s:.2f} s per iteration and {graph_s:.2f} s per GS graph"
    if wall:
        unit, timing = "s", f"wall clock, {args.iters_per_epoch} iterations per epoch; {timing}"
    else:
        unit, timing = "iterations", f"iteration clock, a GS graph costs {clock.graph_cost:.2f} iterations; {timing}"
    print(
        f"{len(train)} training images, {siblings.shape[0]} classes ({int(siblings.any(axis=1).sum())} with a "
        f"near-twin sibling); {budget:.0f} {unit} per run, {timing}; seeds {seeds}; {torch.get_num_threads()} threads",
        flush=True,
    )
    rows = []
    for n, seed in enumerate(seeds):
        for sampler in samplers if n % 2 == 0 else samplers[::-1]:
            config = dataclasses.replace(base, seed=seed)
            run_rows = train_with_budget(
                sampler, config, budget, points, clock, args.iters_per_epoch, evaluate, siblings
            )
            rows += [{"sampler": sampler, "seed": seed, "point": p, **row} for p, row in enumerate(run_rows)]
            last = run_rows[-1]
            print(
                f"{sampler} seed {seed}: {last['iterations']} iterations ({last['wall_s']:.0f} s wall), "
                f"Rank-1 {100 * last['rank1']:.1f}%, mAP {100 * last['mAP']:.1f}%",
                flush=True,
            )
    summary = summarise(rows)
    print(markdown_table(summary))
    xlabel = (
        "training seconds"
        if wall
        else f"training iterations ({iter_s:.2f} s each here; a GS graph counts as {clock.graph_cost:.1f})"
    )
    title = (
        f"train synthetic style A ({siblings.shape[0]} ids), test unseen style B; ResNet-18 IBN-b from scratch, "
        f"B={base.batch_size}, K={base.num_instances}, constant lr; {len(seeds)} seed(s)"
    )
    plot(summary, plot_path, title, xlabel)
    notes = (
        " ".join(["python -m benchmarks.gs_vs_pk", *sys.argv[1:]])
        + f": samplers {samplers}, {num_ids} ids per style, {budget:.0f} "
        f"{unit} per run ({timing}), {points} evaluations after the start, constant lr {base.lr}, B "
        f"{base.batch_size}, K {base.num_instances}, seeds {seeds}; train_s is the budget clock; rank1/mAP on the "
        "unseen style B test split; train_acc, loss and the GS graph stats are means over the epochs since the "
        "previous evaluation, sibling_pairs (near-twin class pairs per training batch) and classes (distinct "
        f"classes in the batches) over its batches. Whole script: {time.perf_counter() - start:.0f} s."
    )
    if args.results:
        save_to(Path(args.results), rows, notes)
    else:
        save("gs_vs_pk", rows, notes=notes)
    print(f"plot: {plot_path}")


if __name__ == "__main__":
    main()
