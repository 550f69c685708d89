"""Graph Sampling vs P x K sampling where the models learn: from a warm start, and from scratch.

Two data sets (`--data`):
- synthetic (default): synthetic style A with --ids identities (half of them train: 1,000 classes by default, so a
  batch of the paper's 32 classes holds 3% of them, MSMT17's share, and mostly easy negatives when drawn at
  random), tested on the test split of the unseen style B (--test-ids identities). Network: the demo's
  (ResNet-18 IBN-b to layer2 at 64 x 32, neck 64), with the paper's batch: B = 64, K = 2 (P = 32 classes).
- glyphs: the glyph benchmark (benchmarks/glyphs; --glyphs DIR holds its msmt17/ folder): 2,000 syllables in
  print faces, tested on unseen syllables in unseen handwriting faces. Network: ResNet-18 at 64 x 64 (cut after
  layer3), B = 32, epochs of at most 200 iterations, the setting of benchmarks/recipe_study.py.

Scenarios:
- warm: one model is trained first from random weights with P x K batches (the scratch recipe, --warm-iters
  iterations; on glyphs with the pairwise loss, the best P x K run of the recipe study), the analogue of the
  paper's ImageNet start. From that checkpoint each sampler trains with the default recipe of a warm start
  (`--recipe auto` picks `warm`: the paper's recipe, with the logit scale kept at least 1); `--warm-loss pairwise`
  swaps its triplet loss for QAConv 2.0's pairwise loss.
- scratch: from random weights with the scratch recipe. On synthetic data GS starts with --gs-warmup-epochs
  random P x K epochs and both samplers train with the triplet loss throughout (only the batches differ); on
  glyphs GS is the default (`--gs-warmup auto`, the pairwise loss in the warm-up) and P x K trains with the
  pairwise loss (the best P x K run of the recipe study).

Budget: equal training iterations per run, with each GS graph charged as (graph seconds / iteration seconds)
iterations, both measured once at the start. Rank-1 and mAP on the held-out test set at the start and after
every budget / --points (evaluation is not counted); GS and PK of one seed run back to back, the order
alternating per seed. One torch thread by default: on a 2-core machine shared with other jobs that is the
steadiest (see docs/reproduction.md).

    python -m benchmarks.gs_vs_pk            # synthetic: 3 seeds x 2 samplers x 2 scenarios: about an hour
    python -m benchmarks.gs_vs_pk --quick    # 1 seed, 200 classes, short budgets: a few minutes
    python -m benchmarks.gs_vs_pk --data glyphs --glyphs data/glyphs

Writes benchmarks/results/gs_vs_pk.json (gs_vs_pk_glyphs.json for the glyphs; one row per run and evaluation
point) and the plot (docs/gs_vs_pk.png, docs/gs_vs_pk_glyphs.png, or <out>/gs_vs_pk-quick.png with --quick);
docs/reproduction.md discusses the results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import machine, save
from qaconv.config import EvaluationConfig, recipe_config
from qaconv.config.presets import DEMO
from qaconv.data import open_dataset
from qaconv.engine.assemble import build_trainer
from qaconv.engine.checkpoint import state_fingerprint
from qaconv.engine.demo import ensure_synthetic_set
from qaconv.engine.evaluate import evaluate_dataset
from qaconv.engine.features import extract_feature_maps
from qaconv.engine.train import Trainer

ROOT = Path(__file__).resolve().parent.parent
NAMES = {"gs": "Graph Sampling", "pk": "P x K", "gs-random": "GS, random graph"}
COLOURS = {"gs": "tab:blue", "pk": "tab:orange", "gs-random": "tab:green"}
SCENARIOS = ("warm", "scratch")
NETWORK = {k: v for k, v in DEMO.items() if k.startswith("model.")}


@dataclass
class Setting:
    """What one invocation compares: `values` are the options of every run (data, network, batch)."""

    data: str
    values: dict[str, Any]
    warm_start: Path
    budget: dict[str, int]
    points: int
    gs_warmup_epochs: int
    workers: int
    graph_cost: float = 0.0
    warm_loss: str | None = None  # None: the warm-start recipe's own loss (the paper's triplet loss)


# ------------------------------------------------------------------------------------------------------ data


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


# ------------------------------------------------------------------------------------------------ evaluation


class HeldOutEvaluator:
    """Rank-1 and mAP on the held-out test set (float32, raw QAConv scores), cached by weights."""

    def __init__(self, dataset: Any, setting: Setting) -> None:
        self.dataset = dataset
        self.size = {"height": setting.values["model.height"], "width": setting.values["model.width"]}
        self.options = EvaluationConfig(dtype="float32", batch_size=256)
        self.cache: dict[str, dict[str, float]] = {}

    def __call__(self, trainer: Trainer) -> dict[str, float]:
        key = state_fingerprint(trainer.model, trainer.matcher)
        if key not in self.cache:
            self.cache[key] = self._evaluate(trainer)
        return self.cache[key]

    def _evaluate(self, trainer: Trainer) -> dict[str, float]:
        ds = self.dataset
        kw = dict(**self.size, batch_size=256, device=trainer.device)
        q_maps = extract_feature_maps(trainer.model, ds.query, **kw)
        g_maps = extract_feature_maps(trainer.model, ds.gallery, **kw)
        raw = evaluate_dataset(trainer.matcher, q_maps, g_maps, ds, options=self.options).metrics["raw"]
        return {"rank1": raw.rank(1), "mAP": float(raw.mAP)}


# ----------------------------------------------------------------------------------------------------- runs


def run_config(setting: Setting, scenario: str, sampler: str, seed: int) -> Any:
    """The TrainConfig of one run: the warm start's default recipe from the warm start, or the scratch recipe."""
    values = {**setting.values, "evaluation.testsets": [], "sampler.name": "pk" if sampler == "pk" else "gs"}
    values.update({"run.seed": seed, "run.workers": setting.workers, "run.device": "cpu", "model.pretrained": None})
    if scenario == "warm":
        values.update({"recipe": "auto", "model.init_from": str(setting.warm_start)})
        if setting.warm_loss:
            values["optimization.loss"] = setting.warm_loss
    elif setting.data == "glyphs":
        values["recipe"] = "scratch"  # GS: the default, an automatic warm-up with the pairwise loss
        if sampler == "pk":
            values["optimization.loss"] = "pairwise"
    else:
        values.update({"recipe": "scratch", "optimization.lr": DEMO["optimization.lr"]})
        values["optimization.warmup_loss"] = "same"  # both samplers train with one loss: only the batches differ
        values["sampler.gs_warmup"] = setting.gs_warmup_epochs if sampler != "pk" else 0
    return recipe_config(values)


def random_neighbors_fn(seed: int) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """A GS neighbour table of k random other classes per class, redrawn every epoch (the control)."""
    rng = np.random.default_rng(seed)

    def neighbors(sample_indices: torch.Tensor, k: int) -> torch.Tensor:
        keys = rng.random((len(sample_indices), len(sample_indices)))
        np.fill_diagonal(keys, np.inf)
        return torch.from_numpy(np.argsort(keys, axis=1)[:, :k])

    return neighbors


def make_trainer(setting: Setting, scenario: str, sampler: str, seed: int) -> Trainer:
    config = run_config(setting, scenario, sampler, seed)
    neighbors = random_neighbors_fn(seed) if sampler == "gs-random" else None
    return build_trainer(config, None, quiet=True, neighbors_fn=neighbors)


def train_with_budget(
    trainer: Trainer, setting: Setting, budget: int, evaluate: HeldOutEvaluator, siblings: np.ndarray | None
) -> list[dict[str, Any]]:
    """Train for `budget` iterations (graphs charged), evaluating at the start and after each budget / points."""
    rows = [{"iterations": 0, "charged": 0.0, "epochs": 0, **evaluate(trainer)}]
    charged, iterations = 0.0, 0
    for point in range(1, setting.points + 1):
        target = budget * point / setting.points
        segment: list[dict[str, Any]] = []
        while charged < target - 0.5:
            cost = setting.graph_cost if trainer.sampler.graph_epoch(trainer.epoch + 1) else 0.0
            stats = trainer.run_epoch(max_batches=max(1, round(target - charged - cost)))
            charged += stats["batches"] + cost
            iterations += stats["batches"]
            segment.append(epoch_stats(trainer, stats, siblings))
        row = {"iterations": iterations, "charged": charged, "epochs": trainer.epoch, **evaluate(trainer)}
        row.update({key: float(np.mean([s[key] for s in segment if key in s])) for key in segment[-1]})
        rows.append(row)
    return rows


def epoch_stats(trainer: Trainer, stats: dict[str, Any], siblings: np.ndarray | None) -> dict[str, float]:
    """Loss, training accuracy, logit scale and, on synthetic data, how hard the epoch's batches were (near-twin
    class pairs)."""
    out = {
        "batches": stats["batches"],
        "loss": stats["loss"],
        "train_acc": stats["acc"],
        "logit_scale": float(trainer.matcher.logit_bn.weight.detach()),
    }
    if siblings is None:
        return out
    used = trainer.sampler.last_batch_classes[: stats["batches"]]
    out["sibling_pairs"] = float(siblings[used[:, :, None], used[:, None, :]].sum(axis=(1, 2)).mean() / 2)
    if trainer.sampler.graph_epoch(stats["epoch"]):
        neighbors = trainer.sampler.last_neighbors
        out["sibling_recall"] = float(siblings[np.arange(len(neighbors))[:, None], neighbors].sum() / siblings.sum())
    return out


# ---------------------------------------------------------------------------------------------- set-up steps


def train_warm_start(setting: Setting, iterations: int, num_classes: int) -> None:
    """The shared warm start: the scratch recipe with P x K batches (seed 0; on glyphs with the pairwise loss),
    for about `iterations` iterations (whole epochs), written as a run folder; a finished one of the same
    length is reused."""
    config = run_config(setting, "scratch", "pk", seed=0)
    per_epoch = min(-(-num_classes // 32), config.schedule.max_iters_per_epoch or num_classes)
    epochs = max(1, round(iterations / per_epoch))
    config.schedule.max_epochs = config.schedule.step_factor = epochs  # fixed schedule, no decay before the end
    metrics = setting.warm_start.parent / "metrics.jsonl"
    if setting.warm_start.is_file() and metrics.is_file() and len(metrics.read_text().splitlines()) == epochs:
        print(f"reusing the warm start in {setting.warm_start.parent}")
        return
    build_trainer(config, setting.warm_start.parent, quiet=True).fit()


def calibrate(setting: Setting, repeats: int = 3, iterations: int = 3) -> tuple[float, float]:
    """(seconds per training iteration, seconds per GS graph): medians over a few short GS epochs of the warm
    start, which see the same load from other jobs, so their ratio holds on a busy machine."""
    trainer = make_trainer(setting, "warm", "gs", seed=0)
    epochs = [trainer.train_epoch(e + 1, max_batches=iterations) for e in range(repeats)]
    iter_s = float(np.median([(s["seconds"] - s["graph_seconds"]) / s["batches"] for s in epochs]))
    return iter_s, float(np.median([s["graph_seconds"] for s in epochs]))


# --------------------------------------------------------------------------------------------------- summary

SUMMARY_KEYS = ("iterations", "rank1", "mAP", "train_acc", "loss", "logit_scale", "sibling_pairs", "sibling_recall")


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per scenario, sampler and evaluation point: (mean, std) over seeds."""
    out = []
    for scenario, sampler in dict.fromkeys((r["scenario"], r["sampler"]) for r in rows):
        mine = [r for r in rows if (r["scenario"], r["sampler"]) == (scenario, sampler)]
        for point in sorted({r["point"] for r in mine}):
            at = [r for r in mine if r["point"] == point]
            entry: dict[str, Any] = {"scenario": scenario, "sampler": sampler, "point": point, "seeds": len(at)}
            for key in SUMMARY_KEYS:
                values = [r[key] for r in at if key in r]
                if values:
                    entry[key] = (float(np.mean(values)), float(np.std(values)))
            out.append(entry)
    return out


def markdown_table(summary: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table: mean ± std over seeds, percentages for the metrics."""

    def cell(entry: dict[str, Any], key: str, scale: float = 100.0, digits: int = 1) -> str:
        if key not in entry:
            return "-"
        mean, std = (scale * v for v in entry[key])
        return f"{mean:.{digits}f} ± {std:.{digits}f}"

    lines = [
        "| start | sampler | iterations | Rank-1 % | mAP % | train acc % | loss | logit scale "
        "| near-twin pairs / batch | GS near-twin recall % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in summary:
        lines.append(
            f"| {e['scenario']} | {e['sampler'].upper()} | {e['iterations'][0]:.0f} | {cell(e, 'rank1')} "
            f"| {cell(e, 'mAP')} | {cell(e, 'train_acc')} | {cell(e, 'loss', 1.0, 2)} "
            f"| {cell(e, 'logit_scale', 1.0, 2)} | {cell(e, 'sibling_pairs', 1.0, 2)} | {cell(e, 'sibling_recall')} |"
        )
    return "\n".join(lines)


def plot(summary: list[dict[str, Any]], path: Path, title: str) -> None:
    """Rank-1 and mAP on the unseen style against charged iterations, per scenario: mean line, ±std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(e["scenario"] for e in summary))
    fig, axes = plt.subplots(len(scenarios), 2, figsize=(10, 3.6 * len(scenarios)), squeeze=False)
    for row, scenario in zip(axes, scenarios, strict=True):
        for ax, key, label in zip(row, ("rank1", "mAP"), ("held-out Rank-1 (%)", "held-out mAP (%)"), strict=True):
            for sampler in dict.fromkeys(e["sampler"] for e in summary if e["scenario"] == scenario):
                mine = [e for e in summary if (e["scenario"], e["sampler"]) == (scenario, sampler)]
                x = [e["iterations"][0] for e in mine]
                mean, std = (np.array([100 * e[key][i] for e in mine]) for i in range(2))
                ax.plot(x, mean, marker="o", color=COLOURS[sampler], label=f"{NAMES[sampler]}: mean")
                ax.fill_between(x, mean - std, mean + std, color=COLOURS[sampler], alpha=0.2, label="± std")
            ax.set(xlabel=f"training iterations ({scenario} start)", ylabel=label)
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic", choices=("synthetic", "glyphs"), help="the data set")
    parser.add_argument("--glyphs", default=str(ROOT / "data" / "glyphs"), help="the glyph benchmark's data folder")
    parser.add_argument("--quick", action="store_true", help="one seed, 400 identities, short budgets")
    parser.add_argument("--scenarios", default="warm,scratch", help="comma-separated: warm, scratch")
    parser.add_argument("--samplers", default="gs,pk", help="comma-separated: gs, pk, gs-random (control)")
    parser.add_argument("--seeds", help="comma-separated training seeds (default 0,1,2; --quick 0)")
    parser.add_argument("--ids", type=int, help="style A identities, half for training (default 2000; --quick 400)")
    parser.add_argument("--test-ids", type=int, help="style B identities, half tested (default 600; --quick 200)")
    parser.add_argument("--warm-iters", type=int, help="iterations of the warm start (default 1500, glyphs 1200; "
                        "--quick 150)")  # fmt: skip
    parser.add_argument("--budget-warm", type=int, help="iterations per warm-start run (default 600; --quick 60)")
    parser.add_argument("--budget-scratch", type=int, help="iterations per scratch run (default 1200; --quick 120)")
    parser.add_argument("--warm-loss", choices=("triplet", "pairwise"), help="the loss of the runs from the warm "
                        "start (default: the warm-start recipe's, the paper's triplet loss)")  # fmt: skip
    parser.add_argument("--gs-warmup-epochs", type=int, default=1, help="synthetic scratch GS: P x K epochs first")
    parser.add_argument("--points", type=int, help="evaluations after the start (default 4; --quick 2)")
    parser.add_argument("--workers", type=int, default=0, help="data loading processes (0: in-process)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared CPU)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "gs_vs_pk"), help="folder for data and the warm start")
    parser.add_argument("--results", help="write the rows to this JSON file instead of benchmarks/results/")
    parser.add_argument("--plot", help="PNG path (default docs/gs_vs_pk[_glyphs].png; --quick <out>/...-quick.png)")
    parser.add_argument(
        "--merge", help="comma-separated --results files of runs made in parallel (one scenario each): write their "
        "rows to benchmarks/results/ and the plot, train nothing"
    )  # fmt: skip
    return parser.parse_args()


def result_name(data: str) -> str:
    return "gs_vs_pk" if data == "synthetic" else f"gs_vs_pk_{data}"


def merge(files: list[str], data: str, plot_path: Path) -> None:
    """One results file and one plot from the --results files of scenarios run as parallel processes."""
    parts = [json.loads(Path(f).read_text()) for f in files]
    rows = [row for part in parts for row in part["rows"]]
    summary = summarise(rows)
    print(markdown_table(summary))
    plot(summary, plot_path, f"{TITLES[data]}; {len({r['seed'] for r in rows})} seeds; mean ± std")
    save(
        result_name(data),
        rows,
        notes=" | ".join(part["notes"] for part in parts) + f" | merged with --merge {','.join(files)}",
    )


TITLES = {
    "synthetic": "train synthetic style A (1000 classes), test unseen style B; ResNet-18 IBN-b 64x32, B=64, K=2",
    "glyphs": "train 2000 syllables in print faces, test unseen syllables in handwriting faces; ResNet-18 64x64, "
    "B=32, K=2",
}


def prepare(args: argparse.Namespace, pick: Callable[..., Any]) -> tuple[Setting, Any, np.ndarray | None, int]:
    """(the setting, the held-out test set, the near-twin matrix of synthetic data or None, training classes)."""
    budget = {"warm": pick(args.budget_warm, 600, 60), "scratch": pick(args.budget_scratch, 1200, 120)}
    if args.data == "glyphs":
        values = {"data.dataset": "msmt17", "data.data_dir": args.glyphs, "model.arch": "resnet18",
                  "model.height": 64, "model.width": 64, "sampler.batch_size": 32, "schedule.max_epochs": 60,
                  "schedule.max_iters_per_epoch": 200}  # fmt: skip
        out = Path(args.out) / "glyphs"
        setting = Setting("glyphs", values, out / "warm" / "checkpoint.pt", budget, pick(args.points, 4, 2),
                          args.gs_warmup_epochs, args.workers)  # fmt: skip
        dataset = open_dataset("msmt17", args.glyphs)
        return setting, dataset, None, dataset.num_train_ids
    num_ids, test_ids = pick(args.ids, 2000, 400), pick(args.test_ids, 600, 200)
    out = Path(args.out) / f"ids{num_ids}"
    ensure_synthetic_set(out / "A", num_ids, "A", seed=0, height=64, width=32)
    ensure_synthetic_set(out / "B", test_ids, "B", seed=1, height=64, width=32)
    values = {**NETWORK, "data.dataset": str(out / "A"), "sampler.batch_size": 64, "sampler.num_instances": 2}
    setting = Setting("synthetic", values, out / "warm" / "checkpoint.pt", budget, pick(args.points, 4, 2),
                      args.gs_warmup_epochs, args.workers)  # fmt: skip
    train = open_dataset(str(out / "A")).train
    siblings = sibling_matrix(train, out / "A" / "meta.json")
    return setting, open_dataset(str(out / "B")), siblings, siblings.shape[0]


def main() -> None:
    args = parse_args()
    default_plot = ROOT / "docs" / f"{result_name(args.data)}.png"
    if args.merge:
        merge(args.merge.split(","), args.data, Path(args.plot) if args.plot else default_plot)
        return
    quick = args.quick
    pick = lambda value, full, short: value if value is not None else (short if quick else full)  # noqa: E731
    seeds = [int(s) for s in (args.seeds or ("0" if quick else "0,1,2")).split(",")]
    scenarios = [s for s in args.scenarios.split(",") if s]
    samplers = [s for s in args.samplers.split(",") if s]
    if set(scenarios) - set(SCENARIOS) or set(samplers) - set(NAMES) or not scenarios or not samplers:
        sys.exit(f"--scenarios: choose from {', '.join(SCENARIOS)}; --samplers: choose from {', '.join(NAMES)}")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    setting, test_set, siblings, num_classes = prepare(args, pick)
    setting.warm_loss = args.warm_loss
    evaluate = HeldOutEvaluator(test_set, setting)
    warm_iters = pick(args.warm_iters, 1200 if args.data == "glyphs" else 1500, 150)
    print(f"{num_classes} training classes; warm start: {warm_iters} P x K iterations")
    train_warm_start(setting, warm_iters, num_classes)
    iter_s, graph_s = calibrate(setting)
    setting.graph_cost = graph_s / iter_s
    print(f"{iter_s:.2f} s per iteration, {graph_s:.2f} s per graph: a graph costs {setting.graph_cost:.1f} iterations")
    rows = []
    for scenario in scenarios:
        for n, seed in enumerate(seeds):
            for sampler in samplers if n % 2 == 0 else samplers[::-1]:
                trainer = make_trainer(setting, scenario, sampler, seed)
                run_rows = train_with_budget(trainer, setting, setting.budget[scenario], evaluate, siblings)
                rows += [{"scenario": scenario, "sampler": sampler, "seed": seed, "point": p, **r}
                         for p, r in enumerate(run_rows)]  # fmt: skip
                last = run_rows[-1]
                print(
                    f"{scenario} {sampler} seed {seed}: {last['iterations']} iterations, Rank-1 "
                    f"{100 * last['rank1']:.1f}%, mAP {100 * last['mAP']:.1f}%, "
                    f"train acc {100 * last['train_acc']:.0f}%",
                    flush=True,
                )
    summary = summarise(rows)
    print(markdown_table(summary))
    plot_path = Path(args.plot) if args.plot else (Path(args.out) / "gs_vs_pk-quick.png" if quick else default_plot)
    plot(summary, plot_path, f"{TITLES[args.data]}; {len(seeds)} seed(s); mean ± std")
    notes = (
        " ".join(["python -m benchmarks.gs_vs_pk", *sys.argv[1:]])
        + f": {num_classes} training classes; budgets {setting.budget} iterations, a GS graph charged "
        f"{setting.graph_cost:.1f} iterations ({iter_s:.2f} s per iteration, {graph_s:.2f} s per graph); warm start "
        f"{warm_iters} P x K iterations; seeds {seeds}; {torch.get_num_threads()} torch thread(s); whole script "
        f"{time.perf_counter() - start:.0f} s"
    )
    if args.results:
        Path(args.results).write_text(json.dumps({"benchmark": result_name(args.data), "machine": machine(),
                                                  "notes": notes, "rows": rows}, indent=2) + "\n")  # fmt: skip
    else:
        save(result_name(args.data), rows, notes=notes)
    print(f"plot: {plot_path}")


if __name__ == "__main__":
    main()
