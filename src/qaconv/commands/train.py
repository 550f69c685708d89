"""`qaconv train`: train QAConv-GS; every option of the config tree is a flag (qaconv.config).

Everything that can be checked is checked before the first epoch: options, the device, the output folder,
the training images and the test sets. The run folder is locked while training, temporary files of an
interrupted run are removed, and `--resume RUN` always works: it continues from the last finished epoch,
starts again from RUN/config.yaml when no epoch finished, and only evaluates when training had finished.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from qaconv.config import TRAIN_FLAGS, TrainConfig, add_flags, flag_names, given, namer, read_yaml
from qaconv.config.files import flatten
from qaconv.config.presets import departures, recipe_config
from qaconv.config.tree import coerce_options
from qaconv.errors import QAConvError
from qaconv.folders import RUN, check_output
from qaconv.lock import FolderLock
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


# ------------------------------------------------------------------------------------------------- options


def _saved_options(run_dir: RunDir) -> tuple[dict[str, Any], str]:
    """A run's options: its config.yaml, or (when that is gone) the copy inside its checkpoint."""
    if run_dir.config.is_file():
        return read_yaml(run_dir.config), str(run_dir.config)
    if run_dir.checkpoint.is_file():
        from qaconv.engine.checkpoint import read_checkpoint

        saved = read_checkpoint(run_dir.checkpoint).get("config")
        if isinstance(saved, dict):
            return saved, f"{run_dir.checkpoint} (config.yaml is missing)"
    raise QAConvError(f"--resume {run_dir.path}: not a run folder (no config.yaml and no checkpoint.pt)")


def user_options(args: argparse.Namespace) -> dict[str, object]:
    """{dotted path: value} the user chose: the config file (or a resumed run's options), then the flags."""
    values: dict[str, object] = {}
    if args.resume:
        mapping, name = _saved_options(RunDir(args.resume))
        values["recipe"] = "paper"  # runs made before recipes existed; newer ones record theirs
    elif args.config:
        mapping, name = read_yaml(args.config), str(args.config)
    else:
        mapping, name = {}, ""
    values.update(coerce_options(TrainConfig, flatten(TrainConfig, mapping, name), lambda path: f"{name}: {path}"))
    values.update(coerce_options(TrainConfig, given(args), namer(TRAIN_NAMES)))
    return values


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe's defaults (auto: scratch without pretrained weights), then the user's options, validated."""
    return recipe_config(user_options(args), namer(TRAIN_NAMES))


RECIPE_WHY = {"warm": "a warm start", "scratch": "no pretrained weights"}


def describe_recipe(config: TrainConfig) -> str:
    """The recipe line printed at the start of a run (the values used), with advice when a scratch run has
    graph sampling without a warm-up."""
    if config.recipe == "paper":
        return "recipe: paper (QAConv 2.1)"
    text = f"recipe: {config.recipe} ({RECIPE_WHY[config.recipe]}; docs/training.md): {departures(config)}"
    if config.recipe == "scratch" and config.sampler.name == "gs" and config.sampler.warmup_epochs == 0:
        text += (
            "; --gs-warmup 0: graph sampling starts on random features and the warm-up loss is unused "
            "(--gs-warmup auto, the recipe's default, starts it when P x K batches have done their work)"
        )
    return text


def describe_changes(changes: dict[str, tuple[object, object]]) -> str:
    """'--lr 0.5 (was 0.005), ...' for the options a resumed run changes."""
    name = namer(TRAIN_NAMES)
    return ", ".join(f"{name(path)} {new} (was {old})" for path, (old, new) in changes.items())


# -------------------------------------------------------------------------------------- checks and folders


def check_initial_weights(config: TrainConfig) -> None:
    """The files a new run starts from (--init-from, or the --pretrained backbone) must exist."""
    from qaconv.models.resnet import model_name
    from qaconv.models.weights import find_imagenet_checkpoint

    m = config.model
    if m.init_from:
        from qaconv.engine.checkpoint import resolve_checkpoint

        try:
            resolve_checkpoint(m.init_from)
        except QAConvError as exc:
            raise QAConvError(f"--init-from: {exc}") from None
    elif m.pretrained and m.pretrained.strip().lower() == "imagenet":
        find_imagenet_checkpoint(model_name(m.arch, m.ibn))
    elif m.pretrained and not Path(m.pretrained).expanduser().is_file():
        raise QAConvError(f"--pretrained {m.pretrained}: weights file not found")


def check_before_work(config: TrainConfig, device: Any, resume: bool = False) -> list[Any]:
    """What would otherwise fail later: the precision, the first weights, the test sets (after training) and
    the training images (in whatever epoch first reads a damaged one). Returns the training records."""
    from qaconv.device import amp_dtype
    from qaconv.engine.assemble import open_training_set
    from qaconv.engine.evaluate import load_testset

    amp_dtype(config.optimization.amp, device)
    if not resume:
        check_initial_weights(config)
    if config.evaluation.dtype == "float16" and device.type != "cuda":
        raise QAConvError(f"--eval-dtype float16 needs a CUDA device (this is {device.type}); use float32 or bfloat16")
    for name in [*config.evaluation.testsets, *config.validation.sets]:
        load_testset(name, config.data.data_dir)
    return open_training_set(config)


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    """Refuse to replace a run's results unless --overwrite; clear what an aborted start left behind."""
    run_dir = RunDir(out)
    check_output(out, RUN, "--out")
    kept = [p.name for p in (run_dir.checkpoint, run_dir.best, run_dir.results) if p.exists()]
    if kept and not overwrite:
        raise QAConvError(f"{out} already holds a run ({', '.join(kept)}); use --resume {out} or --overwrite")
    for path in run_dir.run_files():
        path.unlink(missing_ok=True)
    for folder in (run_dir.tensorboard, run_dir.report):
        if folder.is_dir():
            shutil.rmtree(folder)
    for stale in out.glob("*_score.*") if out.is_dir() else ():
        stale.unlink()


def remove_temporary_files(out: Path) -> None:
    """Temporary files of writes that an interruption cut short (only the lock holder may do this)."""
    for tmp in out.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> int:
    from qaconv.engine.distributed import init_distributed, shutdown

    if args.resume and args.out and Path(args.out) != Path(args.resume):
        raise QAConvError("--resume RUN_DIR continues in RUN_DIR; leave out --out or give the same folder")
    if not args.resume and not args.out:
        raise QAConvError("--out RUN_DIR is required (or --resume RUN_DIR)")
    out = Path(args.resume or args.out)
    check_output(out, RUN, "--resume" if args.resume else "--out")
    config = resolve_config(args)
    if args.resume and RunDir(out).checkpoint.is_file():  # a change a resumed run cannot make: refused now
        from qaconv.engine.assemble import resumable

        changes = resumable(RunDir(out).checkpoint, config, namer(TRAIN_NAMES))[1]
        if changes:
            print(f"{out}: resuming with changed options: {describe_changes(changes)}", flush=True)
    ctx = init_distributed(config.run.device)
    finished = False
    try:
        records = check_before_work(config, ctx.device, resume=bool(args.resume))
        with _locked_on_main(out, ctx):
            train_in(out, config, ctx, resume=bool(args.resume), overwrite=args.overwrite, records=records)
        finished = True
    finally:
        shutdown(ctx, finished)
    return 0


@contextlib.contextmanager
def _locked_on_main(out: Path, ctx: Any) -> Any:
    """The run folder's lock, held by rank 0; every rank stops when rank 0 could not take it."""
    from qaconv.engine.distributed import all_reduce_sum

    lock = FolderLock(out, "qaconv train")
    refused: QAConvError | None = None
    if ctx.is_main:
        try:
            lock.acquire()
        except QAConvError as exc:
            refused = exc
    if all_reduce_sum([float(refused is not None)], ctx)[0]:
        raise refused or QAConvError(f"{out}: rank 0 could not lock the run folder")
    try:
        yield
    finally:
        lock.release()


def train_in(
    out: Path, config: TrainConfig, ctx: Any, resume: bool, overwrite: bool, records: list[Any] | None = None
) -> None:
    """Train in the (locked) run folder `out` (on `records`: the checked training set), then evaluate on the
    test sets."""
    from qaconv.engine.assemble import build_trainer

    run_dir = RunDir(out)
    if ctx.is_main:
        remove_temporary_files(out)
        if resume and not run_dir.checkpoint.is_file():
            print(f"{out}: no epoch had finished; starting the run again from its options", flush=True)
            resume = False
            overwrite = True
        if not resume:
            prepare_run_dir(out, overwrite)
    trainer = build_trainer(config, out, ctx, resume=resume, records=records)
    if ctx.is_main:
        print(describe_recipe(config), flush=True)
    if resume and trainer.schedule.finished(trainer.epoch) and ctx.is_main:
        print(f"{out}: training had finished (epoch {trainer.epoch}); give --max-epochs M to train further")
    try:
        trainer.fit()
    except KeyboardInterrupt:
        if ctx.is_main:
            done = f"epoch {trainer.history[-1]['epoch']} is saved" if trainer.history else "no epoch had finished"
            print(f"interrupted ({done}); continue with: qaconv train --resume {out}", flush=True)
        raise
    if ctx.is_main:
        missing = _unevaluated(run_dir, config) if resume else None
        evaluate_run(trainer, config, out, only=missing)


def _unevaluated(run_dir: RunDir, config: TrainConfig) -> list[str]:
    """The test sets without an entry in results.json (a resumed run evaluates only those)."""
    from qaconv.engine.evaluate import load_testset

    try:
        done = json.loads(run_dir.results.read_text()) if run_dir.results.is_file() else {}
    except ValueError:
        done = {}
    return [t for t in config.evaluation.testsets if load_testset(t, config.data.data_dir)[0] not in done]


def evaluate_run(trainer: Any, config: TrainConfig, out: Path, only: list[str] | None = None) -> dict:
    """Evaluate the trained model on every --testsets entry (or those in `only`) as `qaconv evaluate` does, with
    the run's evaluation options."""
    testsets = config.evaluation.testsets if only is None else only
    if not testsets:
        return {}
    from qaconv.engine.evaluate import run_evaluation

    # locked: train holds the run folder's lock, demo the lock of the demo folder above it
    return run_evaluation(
        trainer.model, trainer.matcher, config.model.network(), testsets, config.data.data_dir, out,
        config.evaluation, trainer.device, workers=config.run.workers, locked=True,
    )  # fmt: skip
