"""What each departure of the from-scratch recipe from the paper's buys: one variant per departure taken away.

Setting: the demo's network and data (ResNet-18 IBN-b to layer2 at 64 x 32, trained from random weights on
synthetic style B with 150 training identities, B = 32, K = 2), graph sampling, the same learning rate for every
variant (the demo's 0.02), a fixed budget of iterations, then Rank-1 / mAP on style B's own test split (in-domain)
and on the unseen style A, as in the demo. Variants:

- paper: the paper's recipe unchanged (frozen BN statistics, backbone at 0.1x, free logit scale, no warm-up);
- scratch: the from-scratch recipe (qaconv.config.presets.SCRATCH, with one graph-sampling warm-up epoch);
- scratch without each of its departures in turn: the logit-scale floor, trained BN statistics, the backbone at
  1x, the pairwise loss in the warm-up epoch, the warm-up epoch.

    python -m benchmarks.recipe_ablation           # 7 variants x 2 seeds x 600 iterations: ~35 min on 2 cores
    python -m benchmarks.recipe_ablation --quick   # 2 variants x 1 seed x 150 iterations

Writes benchmarks/results/recipe_ablation.json; docs/training.md shows the table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import save
from qaconv.config import EvaluationConfig, recipe_config
from qaconv.config.presets import DEMO
from qaconv.data import open_dataset
from qaconv.engine.assemble import build_trainer
from qaconv.engine.demo import TRAIN_STYLE, UNSEEN_STYLE, ensure_demo_data
from qaconv.engine.evaluate import evaluate_dataset
from qaconv.engine.features import extract_feature_maps
from qaconv.engine.train import Trainer

ROOT = Path(__file__).resolve().parent.parent
IDENTITIES = 300  # per style: 150 training classes
VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {"recipe": "paper"},
    "scratch": {"recipe": "scratch", "sampler.gs_warmup_epochs": 1},
    "scratch, no logit-scale floor": {"recipe": "scratch", "sampler.gs_warmup_epochs": 1,
                                      "optimization.logit_scale_floor": 0.0},
    "scratch, frozen BN statistics": {"recipe": "scratch", "sampler.gs_warmup_epochs": 1,
                                      "optimization.freeze_bn": True},
    "scratch, backbone at 0.1x": {"recipe": "scratch", "sampler.gs_warmup_epochs": 1,
                                  "optimization.backbone_lr_mult": 0.1},
    "scratch, triplet warm-up": {"recipe": "scratch", "sampler.gs_warmup_epochs": 1,
                                 "optimization.warmup_loss": "triplet"},
    "scratch, no warm-up epoch": {"recipe": "scratch", "sampler.gs_warmup_epochs": 0},
}  # fmt: skip


def evaluate(trainer: Trainer, folder: Path) -> dict[str, float]:
    ds = open_dataset(str(folder))
    kw = {"height": DEMO["model.height"], "width": DEMO["model.width"], "batch_size": 256}
    q, g = extract_feature_maps(trainer.model, ds.query, **kw), extract_feature_maps(trainer.model, ds.gallery, **kw)
    raw = evaluate_dataset(trainer.matcher, q, g, ds, options=EvaluationConfig(dtype="float32")).metrics["raw"]
    return {"rank1": raw.rank(1), "mAP": float(raw.mAP)}


def run_variant(data: Path, options: dict[str, Any], seed: int, iterations: int, workers: int) -> dict[str, Any]:
    """Train `iterations` iterations of one variant (collapse guard off, to see where it ends) and test it."""
    values = {**DEMO, "data.dataset": str(data / f"synth-{TRAIN_STYLE}"), "evaluation.testsets": [], "run.seed": seed,
              "run.workers": workers, "run.device": "cpu", "optimization.collapse_patience": 0, **options}  # fmt: skip
    trainer = build_trainer(recipe_config(values), None, quiet=True)
    epoch = done = 0
    history = []
    while done < iterations:
        epoch += 1
        history.append(trainer.train_epoch(epoch, max_batches=iterations - done))
        done += history[-1]["batches"]
    final = [h for h in history if h["loss_name"] == history[-1]["loss_name"]]  # after a warm-up loss, if any
    row = {"seed": seed, "iterations": done, "loss": final[-1]["loss_name"], "first_loss": final[0]["loss"],
           "final_loss": final[-1]["loss"], "final_acc": final[-1]["acc"]}  # fmt: skip
    row["logit_scale"] = float(trainer.matcher.logit_bn.weight.detach())
    row.update({f"own_{k}": v for k, v in evaluate(trainer, data / f"synth-{TRAIN_STYLE}").items()})
    row.update({f"unseen_{k}": v for k, v in evaluate(trainer, data / f"synth-{UNSEEN_STYLE}").items()})
    return row


def mean_std(rows: list[dict[str, Any]], key: str, scale: float = 100.0, digits: int = 1) -> str:
    values = scale * np.array([r[key] for r in rows])
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| variant | seeds | final loss: its first -> last epoch | logit scale | in-domain Rank-1 / mAP % "
        f"| unseen style {UNSEEN_STYLE} Rank-1 / mAP % |",
        "|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]

        def ms(key: str, scale: float = 100.0, digits: int = 1, mine: list = mine) -> str:
            return mean_std(mine, key, scale, digits)

        lines.append(
            f"| {name} | {len(mine)} | {ms('first_loss', 1, 2)} -> {ms('final_loss', 1, 2)} "
            f"| {ms('logit_scale', 1, 2)} | {ms('own_rank1')} / {ms('own_mAP')} "
            f"| {ms('unseen_rank1')} / {ms('unseen_mAP')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="paper and scratch only, one seed, 150 iterations")
    parser.add_argument("--iters", type=int, help="iterations per run (default 600; --quick 150)")
    parser.add_argument("--seeds", help="comma-separated seeds (default 0,1; --quick 0)")
    parser.add_argument("--variants", help="comma-separated variant names (default: all; --quick paper,scratch)")
    parser.add_argument("--workers", type=int, default=1, help="data loading processes")
    parser.add_argument("--out", default=str(ROOT / "runs" / "recipe_ablation"), help="folder for the data")
    args = parser.parse_args()
    iterations = args.iters or (150 if args.quick else 600)
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1")).split(",")]
    names = args.variants.split(",") if args.variants else (["paper", "scratch"] if args.quick else list(VARIANTS))
    if set(names) - set(VARIANTS):
        sys.exit(f"--variants: choose from {', '.join(VARIANTS)}")
    data = Path(args.out) / "data"
    height, width = 2 * DEMO["model.height"], 2 * DEMO["model.width"]
    ensure_demo_data(data, IDENTITIES, IDENTITIES, seed=0, height=height, width=width)
    start = time.perf_counter()
    rows = []
    for seed in seeds:
        for name in names:
            row = {"variant": name, **run_variant(data, VARIANTS[name], seed, iterations, args.workers)}
            rows.append(row)
            print(
                f"{name}, seed {seed}: loss {row['first_loss']:.2f} -> {row['final_loss']:.2f}, in-domain "
                f"{100 * row['own_rank1']:.1f}/{100 * row['own_mAP']:.1f}, unseen {100 * row['unseen_rank1']:.1f}/"
                f"{100 * row['unseen_mAP']:.1f}",
                flush=True,
            )
    print(table(rows))
    notes = (
        " ".join(["python -m benchmarks.recipe_ablation", *sys.argv[1:]])
        + f": demo network, {IDENTITIES} identities per style, graph sampling, lr {DEMO['optimization.lr']}, "
        f"{iterations} iterations, seeds {seeds}, {torch.get_num_threads()} threads; "
        f"whole script {time.perf_counter() - start:.0f} s"
    )
    save("recipe_ablation", rows, notes=notes)


if __name__ == "__main__":
    main()
