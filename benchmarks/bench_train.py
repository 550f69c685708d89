"""Training throughput: GS vs PK sampling (the graph's share of an epoch), the training guard's overhead, and the
from-scratch recipe's images/s beside the paper recipe's.

CPU: the demo's network (ResNet-18 IBN-b to layer2 at 64x32, B=32, K=2) on synthetic style A. CUDA
(`--device cuda`): the paper's setting (ResNet-50 IBN-b to layer3 at 384x128, B=64, K=2, float16 AMP).
One full GS epoch has one iteration per class, as in the paper; the graph (one image per class embedded, all
class pairs scored with QAConv, running top-k) is built once at its start.

Guard overhead: the same run with and without the TrainingGuard (spread of every batch's scores, a finiteness
check of the weights every 10 steps), capped epochs alternating between the two so both see the same load;
target <= 2% of images/s. Recipes: the paper's (frozen BN statistics) against the scratch recipe (BN
statistics trained, logit-scale floor), same alternation.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import parse_args, results_name, save
from qaconv.config import recipe_config
from qaconv.config.presets import DEMO
from qaconv.data.synthetic import SynthConfig, generate
from qaconv.engine.assemble import build_trainer
from qaconv.engine.train import Trainer

PAPER_MODEL = {"model.arch": "resnet50", "model.ibn": "b", "model.final_layer": "layer3", "model.neck": 128,
               "model.height": 384, "model.width": 128, "sampler.batch_size": 64}  # fmt: skip


def base_options(data: Path, device: torch.device, workers: int) -> dict:
    cuda = device.type == "cuda"
    options = {**DEMO, "data.dataset": str(data), "evaluation.testsets": [], "run.device": str(device)}
    options.update({"run.workers": workers, **(PAPER_MODEL if cuda else {})})
    return options


def sampler_rows(options: dict) -> list[dict]:
    """Images/s of a second full epoch with each sampler and the graph's share of GS's (the recipe `auto` picks:
    scratch from random weights, on which the paper's recipe would collapse and be stopped by the guard)."""
    rows = []
    for sampler in ("gs", "pk"):
        trainer = build_trainer(recipe_config({**options, "sampler.name": sampler}), None)
        trainer.train_epoch(1)  # warm-up: worker start, allocator, cuDNN autotuning, first graph
        stats = trainer.train_epoch(2)
        rows.append(
            {
                "run": f"{sampler} sampler",
                "classes": trainer.sampler.num_classes,
                "iterations": stats["batches"],
                "images/s": stats["images_per_s"],
                "epoch s": stats["seconds"],
                "graph s": stats["graph_seconds"],
                "graph share": stats["graph_seconds"] / stats["seconds"],
            }
        )
    rows.append({"run": "gs vs pk", "images/s": rows[0]["images/s"] / rows[1]["images/s"]})
    return rows


def alternating(trainers: dict[str, Trainer], rounds: int, iterations: int) -> dict[str, float]:
    """Median images/s of each trainer over `rounds` capped P x K epochs, run in turn (the same load for all)."""
    rates: dict[str, list[float]] = {name: [] for name in trainers}
    for epoch in range(1, rounds + 2):
        for name, trainer in trainers.items():
            stats = trainer.train_epoch(epoch, max_batches=iterations)
            if epoch > 1:  # the first epoch warms up workers and allocator
                rates[name].append(stats["images_per_s"])
    return {name: float(np.median(values)) for name, values in rates.items()}


def comparison_rows(options: dict, rounds: int, iterations: int) -> list[dict]:
    """Guard on vs off (scratch recipe) and paper vs scratch recipe, images/s on P x K batches. From random
    weights the paper's recipe collapses, so the recipe comparison runs both without the collapse check (the
    same guard work on both sides); only the speed is compared."""
    unchecked = {**options, "sampler.name": "pk", "optimization.collapse_patience": 0}
    paper = recipe_config({**unchecked, "recipe": "paper"})
    scratch = recipe_config({**unchecked, "recipe": "scratch"})
    guarded = recipe_config({**options, "recipe": "scratch", "sampler.name": "pk"})
    guard = alternating(
        {"guard": build_trainer(guarded, None), "no guard": build_trainer(guarded, None, guard=None)},
        rounds,
        iterations,
    )
    recipes = alternating(
        {"paper recipe": build_trainer(paper, None), "scratch recipe": build_trainer(scratch, None)},
        rounds,
        iterations,
    )
    rows = [{"run": name, "images/s": rate} for name, rate in {**guard, **recipes}.items()]
    rows.append({"run": "guard overhead", "images/s": 1 - guard["guard"] / guard["no guard"]})
    rows.append({"run": "scratch vs paper recipe", "images/s": recipes["scratch recipe"] / recipes["paper recipe"]})
    return rows


def main() -> None:
    args = parse_args(__doc__, "fewer classes and rounds")
    cuda = args.device.type == "cuda"
    num_ids = (1000 if cuda else 120) if args.quick else (1500 if cuda else 300)
    workers = min(12, os.cpu_count() or 2) if cuda else 1
    rounds, iterations = (3, 10) if args.quick else (7, 20)
    with tempfile.TemporaryDirectory() as tmp:
        size = (384, 128) if cuda else (64, 32)
        generate(
            Path(tmp) / "A", SynthConfig(num_ids=num_ids, num_cams=4, seed=0, style="A", height=size[0], width=size[1])
        )
        options = base_options(Path(tmp) / "A", args.device, workers)
        rows = sampler_rows(options) + comparison_rows(options, rounds, iterations)
    setting = (
        "ResNet-50 IBN-b, 384x128, B=64, K=2, float16 AMP"
        if cuda
        else f"ResNet-18 IBN-b to layer2, 64x32, B=32, K=2, {torch.get_num_threads()} threads"
    )
    save(
        results_name("train", args.device),
        rows,
        notes=f"{setting}, {num_ids // 2} synthetic classes, {workers} loader worker(s); samplers: second full epoch; "
        f"guard and recipes: median of {rounds} alternating epochs of {iterations} P x K iterations; "
        "targets: graph share <= 15%, guard overhead <= 2%",
    )


if __name__ == "__main__":
    main()
