"""`qaconv demo`: the whole method on a laptop CPU, with nothing to download.

Generates a synthetic pedestrian data set in two styles (domains), trains QAConv with graph sampling on
style B from random weights with the from-scratch recipe, and evaluates on style B's own test split (the
in-domain result) and on the unseen style A (the paper's cross-data-set protocol in miniature), so a user
sees both that the model learned and the domain gap.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from qaconv.config import TrainConfig
from qaconv.engine.demo import SIZES, TRAIN_STYLE, UNSEEN_STYLE, demo_config, ensure_demo_data
from qaconv.lock import FolderLock
from qaconv.viz.curves import epochs_by_phase, validated


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="train on synthetic style B, test on the unseen style A (CPU, minutes)")
    parser.add_argument("--quick", action="store_true", help="a smaller run (under 3 minutes on 2 CPU cores)")
    parser.add_argument("--out", default="runs/demo", help="folder for the data and the run (default: runs/demo)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--workers", type=int, default=1, help="data loading processes (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of training (default: 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qaconv.engine.distributed import init_distributed
    from qaconv.folders import DEMO, check_output, mark
    from qaconv.serve import serve_commands

    start = time.perf_counter()
    out = check_output(args.out, DEMO, "--out", overwrite=True, own=("full", "quick", "run", "run-quick"))
    size_name = "quick" if args.quick else "full"
    size = SIZES[size_name]
    config = demo_config(out / size_name, size, args.device, args.workers, args.seed)  # checks every option
    ctx = init_distributed(config.run.device)  # checks the device before any data is made
    with FolderLock(out, "qaconv demo"):
        mark(out, DEMO)
        ensure_demo_data(out / size_name, size.train_style_ids, size.unseen_style_ids, args.seed,
                         height=2 * config.model.height, width=2 * config.model.width)  # fmt: skip
        run_dir = out / f"run-{size_name}" if args.quick else out / "run"
        trainer, results = train_and_test(config, run_dir, ctx)
    own, unseen = (results[Path(t).name]["raw"] for t in config.evaluation.testsets)
    print(
        f"\n{f'in-domain (style {TRAIN_STYLE} test split):':32} {_metrics(own)}\n"
        f"{f'unseen style {UNSEEN_STYLE}:':32} {_metrics(unseen)}\n"
        f"training loss: {_loss_summary(trainer.history, config.optimization.margin)}; "
        f"{time.perf_counter() - start:.0f} s in all\n"
        f"batch-hard accuracy: {_accuracy_summary(trainer.history)}\n"
        f"unseen style {UNSEEN_STYLE} while training (Rank-1 by epoch): {_validation_summary(trainer.history)}\n"
        f"checkpoint: {run_dir / 'checkpoint.pt'}\nresults:    {run_dir / 'results.json'}\n"
        f"curves:     {run_dir / 'training_curves.png'}\n"
        "search the unseen style's gallery in a browser (needs the serve extra, docs/serve.md):\n  "
        + "\n  ".join(serve_commands(run_dir, Path(config.evaluation.testsets[1]) / "bounding_box_test"))
    )
    return 0


def _span(values: list[float], fmt: str) -> str:
    return " -> ".join(format(v, fmt) for v in (values[0], values[-1])) if len(values) > 1 else format(values[0], fmt)


def _loss_summary(history: list[dict[str, Any]], margin: float) -> str:
    """First -> last epoch's loss of each phase (the P x K warm-up, then graph sampling); the triplet
    loss's margin beside it (the loss of a model that separates nothing)."""
    parts = []
    for name, epochs in epochs_by_phase(history).items():
        note = f" (margin {margin:g})" if epochs[0].get("loss_name") == "triplet" else ""
        parts.append(f"{name} {_span([e['loss'] for e in epochs], '.2f')}{note}")
    return ", ".join(parts)


def _accuracy_summary(history: list[dict[str, Any]]) -> str:
    """First -> last epoch's batch-hard accuracy of each phase. Graph-sampled batches hold each class's
    nearest classes, so their accuracy stays lower than on random P x K batches."""
    return (
        ", ".join(
            f"{name} {_span([100 * e['acc'] for e in epochs], '.0f')}%"
            for name, epochs in epochs_by_phase(history).items()
        )
        + " (graph-sampled batches are the hardest: docs/training.md)"
    )


def _validation_summary(history: list[dict[str, Any]]) -> str:
    """The held-out Rank-1 of every validated epoch, by phase (the P x K warm-up, graph sampling): the number
    that shows learning where the loss and accuracy on graph-sampled batches hardly move."""
    phase = {h["epoch"]: "graph sampling" if h.get("sampling") == "graph" else "P x K warm-up" for h in history}
    groups: dict[str, list[str]] = {}
    for points in validated(history).values():
        for epoch, scores in points:
            groups.setdefault(phase[epoch], []).append(f"{epoch}: {100 * scores['rank1']:.1f}%")
    return "; ".join(f"{name} {', '.join(parts)}" for name, parts in groups.items())


def _metrics(raw: dict[str, float]) -> str:
    return f"Rank-1 {100 * raw['rank1']:.1f}%, mAP {100 * raw['mAP']:.1f}%"


def train_and_test(config: TrainConfig, run_dir: Path, ctx: Any) -> tuple[Any, dict[str, Any]]:
    """Replace the previous demo run in `run_dir`, train, and evaluate on both test sets."""
    from qaconv.engine.assemble import build_trainer
    from qaconv.engine.run import describe_recipe, evaluate_run, prepare_run_dir, remove_temporary_files

    if run_dir.is_dir() and any(run_dir.iterdir()):
        print(f"replacing the previous demo run in {run_dir}")
        remove_temporary_files(run_dir)
    prepare_run_dir(run_dir, overwrite=True)
    trainer = build_trainer(config, run_dir, ctx)
    print(f"training QAConv-GS on synthetic style {TRAIN_STYLE} ({len(trainer.loader.dataset)} images, "
          f"{trainer.sampler.num_classes} ids); {describe_recipe(config)}", flush=True)  # fmt: skip
    trainer.fit()
    return trainer, evaluate_run(trainer, config, run_dir)
