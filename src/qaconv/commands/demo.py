"""`qaconv demo`: the whole method on a laptop CPU, with nothing to download.

Generates a synthetic pedestrian data set in two styles (domains), trains QAConv with graph sampling on
style A from random weights with the from-scratch recipe, and evaluates on style A's own test split (the
in-domain result) and on the unseen style B (the paper's cross-data-set protocol in miniature), so a user
sees both that the model learned and the domain gap.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from qaconv.engine.demo import SIZES, demo_config, ensure_demo_data
from qaconv.errors import QAConvError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="train on synthetic style A, test on unseen style B (CPU, minutes)")
    parser.add_argument("--quick", action="store_true", help="a smaller run (under 3 minutes on 2 CPU cores)")
    parser.add_argument("--out", default="runs/demo", help="folder for the data and the run (default: runs/demo)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--workers", type=int, default=1, help="data loading processes (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of training (default: 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qaconv.commands.train import describe_recipe, evaluate_run, prepare_run_dir
    from qaconv.engine.distributed import init_distributed
    from qaconv.engine.train import Trainer

    start = time.perf_counter()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise QAConvError(f"--out {out} exists and is not a folder")
    size_name = "quick" if args.quick else "full"
    size = SIZES[size_name]
    data = out / size_name
    config = demo_config(data, size, args.device, args.workers, args.seed)  # checks every option
    ctx = init_distributed(config.run.device)  # checks the device before any data is made
    ensure_demo_data(data, size.ids, args.seed, height=2 * config.model.height, width=2 * config.model.width)
    run_dir = out / ("run-quick" if args.quick else "run")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        print(f"replacing the previous demo run in {run_dir}")
    prepare_run_dir(run_dir, overwrite=True)
    trainer = Trainer.from_config(config, run_dir, ctx)
    print(f"training QAConv-GS on synthetic style A ({len(trainer.loader.dataset)} images, "
          f"{trainer.sampler.num_classes} ids); {describe_recipe(config)}", flush=True)  # fmt: skip
    trainer.fit()
    results = evaluate_run(trainer, config, run_dir)
    own, unseen = (results[Path(t).name]["raw"] for t in config.evaluation.testsets)
    print(
        f"\nin-domain (style A test split): Rank-1 {100 * own['rank1']:.1f}%, mAP {100 * own['mAP']:.1f}%\n"
        f"unseen style B:                 Rank-1 {100 * unseen['rank1']:.1f}%, mAP {100 * unseen['mAP']:.1f}%\n"
        f"training loss {trainer.history[0]['loss']:.2f} -> {trainer.history[-1]['loss']:.2f} "
        f"(margin {config.optimization.margin:g}); {time.perf_counter() - start:.0f} s in all\n"
        f"checkpoint: {run_dir / 'checkpoint.pt'}\nresults:    {run_dir / 'results.json'}\n"
        f"curves:     {run_dir / 'training_curves.png'}"
    )
    return 0
