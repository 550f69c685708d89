"""The life of a training run, in the library: check, prepare the folder, train, test, clean up.

    from qaconv.config import recipe_config
    from qaconv.engine.run import run_training

    trainer = run_training("runs/mine", recipe_config({"dataset": "data/market1501", "pretrained": None}))

`run_training` is what `qaconv train` does (the command only turns its flags and config file into a
TrainConfig): every option, path and the device are checked and the training images read once before any
work, a change a resumed run cannot make is refused, the run folder is locked (rank 0 of a distributed run
holds the lock), temporary files of an interrupted run are removed, the folder is prepared (a run there
needs `overwrite`), the model trains, and the test sets are evaluated (a resumed run evaluates only those
without results). `qaconv demo` uses the same parts.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from qaconv.config import TRAIN_NAMES, TrainConfig, namer, read_yaml
from qaconv.config.presets import departures
from qaconv.device import amp_dtype
from qaconv.engine.assemble import build_trainer, open_training_set, resumable
from qaconv.engine.checkpoint import read_checkpoint, resolve_checkpoint
from qaconv.engine.distributed import DistContext, all_reduce_sum, init_distributed, shutdown
from qaconv.engine.evaluate import load_testset, run_evaluation
from qaconv.engine.train import Trainer
from qaconv.errors import QAConvError
from qaconv.folders import RUN, check_output
from qaconv.lock import FolderLock
from qaconv.models.resnet import model_name
from qaconv.models.weights import find_imagenet_checkpoint
from qaconv.rundir import RunDir

RECIPE_WHY = {"warm": "a warm start", "scratch": "no pretrained weights"}


def run_training(
    out: str | Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    ctx: DistContext | None = None,
) -> Trainer:
    """Everything `qaconv train` does with a TrainConfig: check, lock, prepare, train and test in the run folder
    `out` (continuing its checkpoint when `resume`); returns the trainer. Under torchrun every process calls it
    (`ctx`: the distributed context, set up here when None)."""
    out = Path(out)
    check_output(out, RUN, "--resume" if resume else "--out")
    if resume and RunDir(out).checkpoint.is_file():  # a change a resumed run cannot make: refused now
        changes = resumable(RunDir(out).checkpoint, config, namer(TRAIN_NAMES))[1]
        if changes:
            print(f"{out}: resuming with changed options: {describe_changes(changes)}", flush=True)
    own_ctx = ctx is None
    ctx = ctx or init_distributed(config.run.device)
    finished = False
    try:
        records = check_before_work(config, ctx.device, resume=resume)
        with locked_on_main(out, ctx):
            trainer = train_and_test(out, config, ctx, resume=resume, overwrite=overwrite, records=records)
        finished = True
    finally:
        if own_ctx:
            shutdown(ctx, finished)
    return trainer


def saved_options(run_dir: RunDir) -> tuple[dict[str, Any], str]:
    """A run's options: its config.yaml, or (when that is gone) the copy inside its checkpoint."""
    if run_dir.config.is_file():
        return read_yaml(run_dir.config), str(run_dir.config)
    if run_dir.checkpoint.is_file():
        saved = read_checkpoint(run_dir.checkpoint).get("config")
        if isinstance(saved, dict):
            return saved, f"{run_dir.checkpoint} (config.yaml is missing)"
    raise QAConvError(f"--resume {run_dir.path}: not a run folder (no config.yaml and no checkpoint.pt)")


def check_initial_weights(config: TrainConfig) -> None:
    """The files a new run starts from (--init-from, or the --pretrained backbone) must exist."""
    m = config.model
    if m.init_from:
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


@contextlib.contextmanager
def locked_on_main(out: Path, ctx: Any) -> Any:
    """The run folder's lock, held by rank 0; every rank stops when rank 0 could not take it."""
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


def train_and_test(
    out: Path, config: TrainConfig, ctx: Any, resume: bool, overwrite: bool, records: list[Any] | None = None
) -> Trainer:
    """Train in the (locked) run folder `out` (on `records`: the checked training set), then evaluate on the
    test sets."""
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
        missing = unevaluated(run_dir, config) if resume else None
        evaluate_run(trainer, config, out, only=missing)
    return trainer


def unevaluated(run_dir: RunDir, config: TrainConfig) -> list[str]:
    """The test sets without an entry in results.json (a resumed run evaluates only those)."""
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
    # locked: train holds the run folder's lock, demo the lock of the demo folder above it
    return run_evaluation(
        trainer.model, trainer.matcher, config.model.network(), testsets, config.data.data_dir, out,
        config.evaluation, trainer.device, workers=config.run.workers, locked=True,
    )  # fmt: skip


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
