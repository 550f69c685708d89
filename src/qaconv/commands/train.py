"""`qaconv train`: train QAConv-GS; every option of the config tree is a flag (qaconv.config)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from qaconv.config import TRAIN_FLAGS, TrainConfig, add_flags, flag_names, given, namer, read_yaml
from qaconv.config.files import flatten
from qaconv.config.presets import departures, recipe_config
from qaconv.config.tree import coerce_options
from qaconv.errors import QAConvError
from qaconv.rundir import RunDir

TRAIN_NAMES = flag_names(TrainConfig, TRAIN_FLAGS)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train QAConv with graph sampling (the paper's recipe by default)")
    parser.add_argument("--out", help="run folder for checkpoints, logs and results")
    parser.add_argument("--config", help="YAML file of options (flags given on the command line win)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped")
    parser.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    add_flags(parser, TrainConfig, TRAIN_NAMES)
    parser.set_defaults(func=run)


def user_options(args: argparse.Namespace) -> dict[str, object]:
    """{dotted path: value} the user chose: the config file (or a resumed run's config.yaml), then the flags."""
    source = Path(args.resume) / "config.yaml" if args.resume else args.config
    values: dict[str, object] = {}
    if source:
        name = str(source)
        file_values = flatten(TrainConfig, read_yaml(source), name)
        values.update(coerce_options(TrainConfig, file_values, lambda path: f"{name}: {path}"))
    values.update(coerce_options(TrainConfig, given(args), namer(TRAIN_NAMES)))
    return values


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe's defaults (auto: scratch without pretrained weights), then the user's options, validated."""
    return recipe_config(user_options(args), namer(TRAIN_NAMES))


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    """Refuse to mix two runs in one folder unless --overwrite, which removes the old run's files."""
    run_dir = RunDir(out)
    if out.exists() and not out.is_dir():
        raise QAConvError(f"--out {out} exists and is not a folder")
    existing = run_dir.existing()
    if existing and not overwrite:
        raise QAConvError(f"{out} already holds a run ({', '.join(existing)}); use --resume {out} or --overwrite")
    for path in run_dir.run_files():
        path.unlink(missing_ok=True)
    for folder in (run_dir.tensorboard, run_dir.report):
        if folder.is_dir():
            shutil.rmtree(folder)


def describe_recipe(config: TrainConfig) -> str:
    if config.recipe == "scratch":
        return f"recipe: scratch (no pretrained weights; docs/training.md): {departures('scratch')}"
    return "recipe: paper (QAConv 2.1)"


def run(args: argparse.Namespace) -> int:
    from qaconv.engine.distributed import init_distributed, shutdown
    from qaconv.engine.train import Trainer

    if args.resume and args.out and Path(args.out) != Path(args.resume):
        raise QAConvError("--resume RUN_DIR continues in RUN_DIR; leave out --out or give the same folder")
    if not args.resume and not args.out:
        raise QAConvError("--out RUN_DIR is required (or --resume RUN_DIR)")
    out = Path(args.resume or args.out)
    config = resolve_config(args)
    ctx = init_distributed(config.run.device)
    try:
        if ctx.is_main and not args.resume:
            prepare_run_dir(out, args.overwrite)
        trainer = Trainer.from_config(config, out, ctx, resume=bool(args.resume))
        if ctx.is_main:
            print(describe_recipe(config), flush=True)
        try:
            trainer.fit()
        except KeyboardInterrupt:
            if ctx.is_main:
                print(f"interrupted; the last finished epoch is saved: qaconv train --resume {out}")
            raise
        if ctx.is_main:
            evaluate_run(trainer, config, out)
    finally:
        shutdown(ctx)
    return 0


def evaluate_run(trainer: object, config: TrainConfig, out: Path) -> dict:
    """Evaluate the trained model on every --testsets entry with the evaluator of `qaconv evaluate`."""
    e = config.evaluation
    if not e.testsets:
        return {}
    from qaconv.engine.evaluate import EvalOptions, run_evaluation

    options = EvalOptions(
        batch_size=e.batch_size,
        workers=config.run.workers,
        prob_block=e.prob_block,
        gal_block=e.gal_block,
        dtype=e.dtype,
        rerank=e.rerank,
        tlift=e.tlift,
    )
    return run_evaluation(
        trainer.model,
        trainer.matcher,
        config.model.network(),
        e.testsets,
        config.data.data_dir,
        out,
        options,
        trainer.device,
    )
