"""Recipes from random weights, measured where it counts: held-out Rank-1 / mAP after every epoch, two data sets.

Each variant is a set of `qaconv train` options (or an experimental part, below) on top of a data set's
setting; every run goes through the code path of `qaconv train` (`build_trainer`) and validates on the
held-out test set after every epoch (`--val-sets`), so the curves show what each phase of a run earns.

Data sets (`--data`):
- glyphs: the glyph benchmark (benchmarks/glyphs; `--glyphs DIR` holds its msmt17/ folder): ResNet-18 at
  64 x 64 (cut after layer3, the default), B = 32, 6 epochs of at most 200 iterations (1,200 iterations): the
  budget of `--pretrained none --batch-size 32 --max-epochs 6 --max-iters-per-epoch 200`. Test: unseen
  syllables in unseen handwriting faces, printed beside the pixel-cosine floor.
- demo: the quick demo's data (synthetic style B, 150 training identities; test: the unseen style A) and
  network (qaconv.config.presets.DEMO: ResNet-18 IBN-b to layer2 at 64 x 32, B = 32), 14 epochs of at most 47
  iterations (658 iterations, about the quick demo's 667).

Experimental parts (not options of qaconv; kept here to measure them): `pairwise_beside` trains graph-sampled
epochs with the triplet plus the pairwise loss; `tied_margin` makes the triplet margin a multiple of the
matcher's logit scale (constant in standardised units); `mix` replaces a share of each graph batch's
neighbour classes with random classes (constant, or falling over the graph-sampled epochs: a curriculum).

    python -m benchmarks.recipe_study --data glyphs --variants "scratch,pk with the pairwise loss" --seeds 0,1,2
    python -m benchmarks.recipe_study --table benchmarks/results/recipe_study.json   # the tables only

Rows are appended to the results file after every run (a rerun skips the runs it holds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor

from benchmarks.common import machine
from benchmarks.glyphs.build import read_floor
from qaconv.config import recipe_config
from qaconv.config.presets import DEMO
from qaconv.engine.assemble import build_trainer
from qaconv.engine.callbacks import Callback
from qaconv.engine.demo import SIZES, TRAIN_STYLE, UNSEEN_STYLE, ensure_demo_data
from qaconv.engine.train import Trainer
from qaconv.losses import TripletLoss

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "recipe_study.json"

#: Options of each variant (dotted paths or flag names), on top of the data set's setting and the scratch recipe.
VARIANTS: dict[str, dict[str, Any]] = {
    "scratch": {},
    "lr 0.01": {"lr": 0.01},
    "lr 0.02": {"lr": 0.02},
    "lr 0.04": {"lr": 0.04},
    "gs from the start": {"gs_warmup": "0"},
    "half warm-up by hand": {"gs_warmup": "half"},
    "pk with the pairwise loss": {"sampler": "pk", "loss": "pairwise"},
    "pk with the triplet loss": {"sampler": "pk"},
    "pairwise beside triplet": {"part": "pairwise_beside"},
    "tied margin": {"part": "tied_margin"},
    "random graph": {"part": "mix", "mix": [1.0]},
    "gs as warm start": {"part": "warm_gs"},
    "freeze bn at switch": {"part": "freeze_bn"},
    "gs at lr/10": {"part": "decay_at_switch"},
    "gs with the pairwise loss": {"loss": "pairwise"},
    "mix half random": {"part": "mix", "mix": [0.5]},
    "mix curriculum": {"part": "mix", "mix": [0.67, 0.33, 0.0]},
    "decay at 2/3": {"decay_at": 2 / 3},
    "warm-up to 30%": {"gs_warmup_accuracy": 0.3},
    "warm-up to 70%": {"gs_warmup_accuracy": 0.7},
    "unbounded warm-up": {"gs_warmup_share": 1.0},
}
EXPERIMENT_KEYS = ("part", "mix", "decay_at")
#: Iterations of a run with the graph sampler (warm-up epochs included) in each setting: P x K runs get as many.
BUDGET = {"glyphs": 1200, "demo": 658}


# ------------------------------------------------------------------------------------------ experimental parts


class PairwiseBesideTriplet(TripletLoss):
    """The triplet loss plus QAConv 2.0's pairwise loss on the same scores (every pair of the batch gives a
    gradient, not only each anchor's hardest two)."""

    def forward(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        score = self.scores(features, labels)
        from qaconv.losses import _hardest_pairs

        min_pos, max_neg = _hardest_pairs(score, labels)
        triplet = F.relu(max_neg - min_pos + self.margin)
        target = (labels[:, None] == labels[None, :]).float()
        pairwise = F.binary_cross_entropy_with_logits(score, target, reduction="none").sum(dim=1)
        return triplet + pairwise, (min_pos >= max_neg).float().detach()


class TiedMarginTriplet(TripletLoss):
    """The triplet loss with the margin `margin` x the logit scale (constant in standardised score units)."""

    def forward(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        from qaconv.losses import _hardest_pairs

        min_pos, max_neg = _hardest_pairs(self.scores(features, labels), labels)
        scale = self.matcher.logit_bn.weight.detach().abs().squeeze()
        return F.relu(max_neg - min_pos + self.margin * scale), (min_pos >= max_neg).float().detach()


def mixed_neighbors(neighbors_fn: Any, shares: list[float], seed: int) -> Any:
    """A neighbours function whose n-th graph (0-based) keeps each class's nearest classes but replaces
    shares[n] of them (the last share from then on) with random other classes."""
    calls = [0]

    def neighbors(sample_indices: Tensor, k: int) -> Tensor:
        table = neighbors_fn(sample_indices, k).clone()
        share = shares[min(calls[0], len(shares) - 1)]
        rng = np.random.default_rng([seed, calls[0]])
        calls[0] += 1
        replace = round(share * k)
        if replace:
            num = len(table)
            for row in range(num):
                keep = table[row, : k - replace].tolist()
                pool = np.setdiff1d(np.arange(num), [row, *keep])
                table[row, k - replace :] = torch.from_numpy(rng.choice(pool, size=replace, replace=False))
        return table

    return neighbors


class AtTheSwitch(Callback):
    """When the automatic warm-up ends: train graph sampling as a warm start (backbone at 0.1x its learning
    rate, BN statistics frozen: the paper's recipe from a learned start), with BN statistics frozen only, or with
    every learning rate / 10."""

    def __init__(self, change: str) -> None:
        self.change = change

    def on_epoch_end(self, trainer: Any, stats: dict[str, Any]) -> None:
        if "warmup_ended" not in stats:
            return
        groups = {"warm_gs": trainer.optimizer.param_groups[:1], "decay_at_switch": trainer.optimizer.param_groups}
        for group in groups.get(self.change, []):
            group["lr"] *= 0.1
            group["base_lr"] *= 0.1
        if self.change in ("warm_gs", "freeze_bn"):
            trainer.freeze_bn = True


def apply_part(trainer: Trainer, variant: dict[str, Any], seed: int) -> None:
    part = variant.get("part")
    if part in ("pairwise_beside", "tied_margin"):
        loss = PairwiseBesideTriplet if part == "pairwise_beside" else TiedMarginTriplet
        margin = 1.0 if part == "tied_margin" else trainer.criterion.main.margin
        trainer.criterion.main = loss(trainer.matcher, margin=margin)
    elif part == "mix":
        trainer.sampler.neighbors_fn = mixed_neighbors(trainer.sampler.neighbors_fn, variant["mix"], seed)
    elif part in ("warm_gs", "decay_at_switch", "freeze_bn"):
        trainer.callbacks.append(AtTheSwitch(part))


# --------------------------------------------------------------------------------------------------- setting


def setting(data: str, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, float] | None]:
    """(options of the data set's runs, the pixel-cosine floor where known)."""
    if data == "glyphs":
        values = {
            "dataset": "msmt17",
            "data_dir": args.glyphs,
            "val_sets": ["msmt17"],
            "arch": "resnet18",
            "height": 64,
            "width": 64,
            "batch_size": 32,
            "max_epochs": 6,
            "max_iters_per_epoch": 200,
        }
        return values, read_floor(Path(args.glyphs) / "msmt17")
    folder = Path(args.out) / "demo-data"
    size = SIZES["quick"]
    ensure_demo_data(
        folder, size.train_style_ids, size.unseen_style_ids, 0, 2 * DEMO["model.height"], 2 * DEMO["model.width"]
    )
    network = {k: v for k, v in DEMO.items() if k.startswith("model.") or k.startswith("sampler.")}
    values = {
        **network,
        "dataset": str(folder / f"synth-{TRAIN_STYLE}"),
        "val_sets": [str(folder / f"synth-{UNSEEN_STYLE}")],
        "max_epochs": 14,
        "max_iters_per_epoch": 47,
    }
    return values, None


def label(name: str, args: argparse.Namespace) -> str:
    """A variant's name with the --base options that every run of this invocation adds."""
    return name + "".join(f", {k} {v}" for k, v in args.base.items())


def run(data: str, name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one variant with one seed; its per-epoch history and final held-out numbers."""
    base, floor = setting(data, args)
    variant = VARIANTS[name]
    values = {
        **base,
        "pretrained": None,
        "testsets": [],
        "seed": seed,
        "workers": args.workers,
        "device": "cpu",
        **args.base,
        **{k: v for k, v in variant.items() if k not in EXPERIMENT_KEYS},
    }
    if values.get("gs_warmup") == "half":
        values["gs_warmup"] = str(values["max_epochs"] // 2)
    if "decay_at" in variant:  # a fixed schedule: lr / 10 from this share of the epochs on
        values["step_factor"] = max(1, round(variant["decay_at"] * values["max_epochs"]))
    start = time.perf_counter()
    trainer = build_trainer(recipe_config(values), None, quiet=True)
    if trainer.sampler.name == "pk":  # equal iterations: P x K epochs are shorter than graph-sampling ones
        epochs = -(-BUDGET[data] // len(trainer.sampler))
        values.update(max_epochs=epochs, step_factor=epochs, val_every=max(1, round(epochs / base["max_epochs"])))
        trainer = build_trainer(recipe_config(values), None, quiet=True)
    apply_part(trainer, variant, seed)
    history = trainer.fit()
    final = history[-1]["val"]
    row = {
        "data": data,
        "variant": label(name, args),
        "seed": seed,
        "seconds": time.perf_counter() - start,
        "iterations": sum(h["batches"] for h in history),
        "floor": floor,
        "rank1": np.mean([s["rank1"] for s in final.values()]),
        "mAP": np.mean([s["mAP"] for s in final.values()]),
        "logit_scale": float(trainer.matcher.logit_bn.weight.detach()),
        "history": [
            {k: h[k] for k in ("epoch", "sampling", "loss_name", "loss", "acc", "batches", "val") if k in h}
            for h in history
        ],
    }
    switch = next((h for h in history if "warmup_ended" in h), None)
    if switch is not None:
        row["switch_epoch"], row["switch_reason"] = switch["epoch"], switch["warmup_ended"]
        row["switch_mAP"] = float(np.mean([s["mAP"] for s in switch["val"].values()]))
        row["switch_rank1"] = float(np.mean([s["rank1"] for s in switch["val"].values()]))
    return {k: float(v) if isinstance(v, np.floating) else v for k, v in row.items()}


# ---------------------------------------------------------------------------------------------------- tables


def table(rows: list[dict[str, Any]]) -> str:
    """Per data set and variant: mean ± std over seeds of the final held-out Rank-1 / mAP, the numbers at the
    switch to graph sampling, and the switch epoch."""

    def ms(values: list[float], scale: float = 100.0) -> str:
        v = scale * np.array(values)
        return f"{v.mean():.1f} ± {v.std():.1f}"

    lines = [
        "| data | variant | seeds | iterations | Rank-1 % | mAP % | at the switch: Rank-1 / mAP % | switch epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for data in dict.fromkeys(r["data"] for r in rows):
        for name in dict.fromkeys(r["variant"] for r in rows if r["data"] == data):
            mine = [r for r in rows if (r["data"], r["variant"]) == (data, name)]
            switched = [r for r in mine if "switch_mAP" in r]
            at_switch = (
                f"{ms([r['switch_rank1'] for r in switched])} / {ms([r['switch_mAP'] for r in switched])}"
                if switched
                else "-"
            )
            epochs = ", ".join(str(r["switch_epoch"]) for r in switched) or "-"
            lines.append(
                f"| {data} | {name} | {len(mine)} | {mine[0]['iterations']} | {ms([r['rank1'] for r in mine])} "
                f"| {ms([r['mAP'] for r in mine])} | {at_switch} | {epochs} |"
            )
        floor = next((r["floor"] for r in rows if r["data"] == data and r.get("floor")), None)
        if floor:
            lines.append(
                f"| {data} | pixel-cosine floor | - | 0 | {100 * floor['rank1']:.1f} | {100 * floor['mAP']:.1f} "
                "| - | - |"
            )
    return "\n".join(lines)


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {"benchmark": "recipe_study", "rows": []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="glyphs,demo", help="comma-separated: glyphs, demo")
    parser.add_argument("--variants", default="scratch", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--glyphs", default=str(ROOT / "data" / "glyphs"), help="the glyph benchmark's data folder")
    parser.add_argument("--out", default=str(ROOT / "runs" / "recipe_study"), help="folder for the demo's data")
    parser.add_argument("--results", default=str(RESULTS), help="results file (rows are appended)")
    parser.add_argument("--workers", type=int, default=0, help="data loading processes (0: in-process)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--table", help="print the tables of this results file and exit")
    parser.add_argument("--base", default="", help="options added to every variant: KEY=VALUE,... (e.g. lr=0.02)")
    args = parser.parse_args()
    args.base = {k.strip(): yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.base.split(",") if item)}
    if args.table:
        print(table(load(Path(args.table))["rows"]))
        return
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    if set(names) - set(VARIANTS):
        sys.exit(f"--variants: choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(args.threads)
    path = Path(args.results)
    for data in args.data.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            for name in names:
                results = load(path)
                if any(
                    (r["data"], r["variant"], r["seed"]) == (data, label(name, args), seed) for r in results["rows"]
                ):
                    continue
                row = run(data, name, seed, args)
                print(
                    f"{data} {name} seed {seed}: Rank-1 {100 * row['rank1']:.1f}, mAP {100 * row['mAP']:.1f} "
                    f"({row['iterations']} iterations, {row['seconds']:.0f} s)",
                    flush=True,
                )
                results = load(path)  # another process may have added rows meanwhile
                results["rows"].append(row)
                results.update(machine=machine(), date=time.strftime("%Y-%m-%d"))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(results, indent=1) + "\n")
    print(table(load(path)["rows"]))


if __name__ == "__main__":
    main()
