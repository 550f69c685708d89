"""`build_trainer`: every part of a training run built from a TrainConfig, in the order that fails fast.

Options are checked first (the config tree did the ranges; here what needs the device), then the data
set is opened, then the model gets its first weights (ImageNet, a warm start, or a resumed checkpoint),
then the loss, optimizer, sampler, loader, schedule, guard and callbacks are made and handed to the
Trainer. Experiments that need other parts build them the same way and call the Trainer's constructor.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from qaconv.config import TrainConfig, save_config
from qaconv.data import open_dataset
from qaconv.data.datasets import ReIDDataset
from qaconv.data.loader import EpochLoader, ImageDataset, seed_everything
from qaconv.data.readable import describe, unreadable_images
from qaconv.data.samplers import SAMPLERS, GraphWarmup, NeighborsFn, build_sampler
from qaconv.data.transforms import build_train_transform
from qaconv.device import amp_dtype, half_on_cuda, resolve_device
from qaconv.engine.callbacks import Callback, Checkpointer, ConsoleLog, CurvePlot, MetricsLog, Progress, TensorBoardLog
from qaconv.engine.checkpoint import build_model, load_initial_weights, load_state, read_checkpoint
from qaconv.engine.distributed import DistContext
from qaconv.engine.features import extract_feature_maps
from qaconv.engine.guard import TrainingGuard
from qaconv.engine.neighbors import qaconv_neighbors_fn
from qaconv.engine.resume import apply_changes, check_resume
from qaconv.engine.schedule import AdaptiveSchedule
from qaconv.engine.train import Trainer
from qaconv.engine.validation import Validator, hold_out_identities
from qaconv.errors import QAConvError
from qaconv.io import check_free_space
from qaconv.losses import Criterion, WarmupLoss, build_loss
from qaconv.matching import QAConv
from qaconv.rundir import RunDir


class FromConfig:
    """The type of FROM_CONFIG: "the part the config describes", where None would mean "none"."""

    def __repr__(self) -> str:
        return "FROM_CONFIG"


FROM_CONFIG = FromConfig()


def build_optimizer(model: nn.Module, matcher: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD (nesterov): backbone at backbone_lr_mult x lr, neck at lr, matcher at matcher_lr_mult x lr."""
    o = config.optimization
    groups = [{"params": list(model.base.parameters()), "lr": o.lr * o.backbone_lr_mult}]
    if model.neck_conv is not None:
        groups.append({"params": list(model.neck_conv.parameters()), "lr": o.lr})
    groups.append({"params": list(matcher.parameters()), "lr": o.lr * o.matcher_lr_mult})
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=True)


def build_criterion(config: TrainConfig, matcher: nn.Module) -> Criterion:
    """The run's loss; with a graph-sampling warm-up and another --warmup-loss, that loss during the warm-up."""
    o, s = config.optimization, config.sampler
    main = build_loss(o.loss, matcher, margin=o.margin)
    no_warmup = not SAMPLERS[s.name].uses_graph or s.warmup_epochs == 0
    if o.warmup_loss in ("same", o.loss) or no_warmup:
        return main
    return WarmupLoss(build_loss(o.warmup_loss, matcher, margin=o.margin), main)


def build_warmup(config: TrainConfig) -> GraphWarmup:
    """The graph sampler's P x K warm-up: a fixed number of epochs, or the automatic switch bounded by
    --gs-warmup-share of --max-epochs."""
    s = config.sampler
    if s.warmup_epochs is not None:
        return GraphWarmup(epochs=s.warmup_epochs)
    bound = max(1, int(s.gs_warmup_share * config.schedule.max_epochs))
    return GraphWarmup.auto(accuracy=s.gs_warmup_accuracy, max_epochs=bound)


def build_validator(config: TrainConfig, held_out: ReIDDataset | None, device: torch.device) -> Validator | None:
    """Validation on the held-out identities and the --val-sets (None when the run asks for none)."""
    from qaconv.engine.evaluate import load_testsets

    sets = {held_out.name: held_out} if held_out is not None else {}
    if config.validation.sets:
        sets.update(dict(load_testsets(config.validation.sets, config.data.data_dir)))
    if not sets:
        return None
    e, m = config.evaluation, config.model
    return Validator(sets, config.validation.every, height=m.height, width=m.width, batch_size=e.batch_size,
                     workers=config.run.workers, device=device, dtype=e.dtype)  # fmt: skip


def representative_extractor(model: nn.Module, records: list[Any], config: TrainConfig, device: torch.device,
                             dtype: torch.dtype | None) -> Any:  # fmt: skip
    """extract_fn for the graph sampler: feature maps of the chosen images with the current weights
    (eval mode, test transform), float16 on CUDA."""
    c = config

    def extract(sample_indices: Tensor) -> Tensor:
        return extract_feature_maps(
            model,
            [records[i] for i in sample_indices.tolist()],
            height=c.model.height,
            width=c.model.width,
            batch_size=c.evaluation.batch_size,
            num_workers=c.run.workers,
            device=device,
            autocast_dtype=dtype,
            out_dtype=half_on_cuda(device),
        ).to(device)

    return extract


def open_training_set(config: TrainConfig) -> list[Any]:
    """The training records of `config`'s data set, every image checked readable (a header parse, `qaconv.data.
    readable`) so that a damaged file stops the run before its first epoch, or, with skip_bad_images, is left
    out with a warning naming it."""
    d = config.data
    dataset = open_dataset(d.dataset, d.data_dir, d.combine_all, skip_unparsable=d.skip_unparsable)
    records = dataset.train
    if not records:
        raise QAConvError(f"data set {d.dataset} has no training images")
    bad = unreadable_images([r.path for r in records])
    if bad:
        message = describe(bad, len(records), "training images")
        if not d.skip_bad_images:
            raise QAConvError(f"{message}; remove or replace them, or pass --skip-bad-images to train without them")
        warnings.warn(f"{message}; training without them (--skip-bad-images)", UserWarning, stacklevel=2)
        skipped = {path for path, _ in bad}
        records = [r for r in records if r.path not in skipped]
    if len({r.pid for r in records}) < 2:
        raise QAConvError(
            f"data set {d.dataset} has only one training identity: metric learning needs at least two "
            "(a batch without negatives teaches nothing)"
        )
    return records


def build_callbacks(config: TrainConfig, run_dir: RunDir, model_config: Any, quiet: bool) -> list[Callback]:
    """Checkpoints and metrics first (metrics.jsonl follows checkpoint.pt), then reports."""
    callbacks: list[Callback] = [
        Checkpointer(run_dir, model_config, dataclasses.asdict(config), lambda path: save_config(config, path)),
        MetricsLog(run_dir),
        TensorBoardLog(run_dir),
        CurvePlot(run_dir, margin=config.optimization.margin if config.optimization.loss == "triplet" else None),
    ]
    if not quiet:
        callbacks += [ConsoleLog(), Progress()]
    return callbacks


def build_trainer(
    config: TrainConfig,
    run_dir: str | Path | None = None,
    ctx: DistContext | None = None,
    *,
    resume: bool = False,
    quiet: bool = False,
    callbacks: list[Callback] | None = None,
    neighbors_fn: NeighborsFn | None = None,
    guard: TrainingGuard | None | FromConfig = FROM_CONFIG,
    records: list[Any] | None = None,
) -> Trainer:
    """A Trainer for `config` that writes `run_dir` (None: nothing is written), continuing its checkpoint
    when `resume`. `records`: the training set when the caller opened it already (`open_training_set`). For
    experiments: `callbacks` replaces the run-folder callbacks, `neighbors_fn` the graph sampler's QAConv
    neighbours (qaconv.engine.neighbors has an embedding alternative) and `guard` the guard that `config`
    describes (None: no guard)."""
    ctx = ctx or DistContext(device=resolve_device(config.run.device))  # one process on the config's device
    device = ctx.device
    autocast = amp_dtype(config.optimization.amp, device)
    seed_everything(config.run.seed)
    torch.backends.cudnn.benchmark = not config.run.deterministic
    if config.run.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    records = open_training_set(config) if records is None else records
    held_out = None
    if config.validation.share > 0:
        records, held_out = hold_out_identities(records, config.validation.share, config.run.seed)
    model, matcher = _initial_model(config, resume)
    model.to(device)
    matcher.to(device)
    o = config.optimization
    criterion = build_criterion(config, matcher)
    if neighbors_fn is None:
        extract = representative_extractor(model, records, config, device, autocast)
        neighbors_fn = qaconv_neighbors_fn(extract, matcher, device=device)
    sampler = build_sampler(
        config.sampler.name,
        [r.pid for r in records],
        neighbors_fn,
        warmup=build_warmup(config),
        batch_size=config.sampler.batch_size,
        num_instances=config.sampler.num_instances,
        seed=config.run.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
    )
    transform = build_train_transform(
        config.model.height, config.model.width, min_size=config.data.min_size, max_size=config.data.max_size
    )
    loader = EpochLoader(
        ImageDataset(records, transform, for_size=max(config.model.height, config.model.width)),
        sampler,
        seed=config.run.seed,
        num_workers=config.run.workers,
        device=device,
    )
    if callbacks is None:
        writes = ctx.is_main and run_dir is not None
        callbacks = build_callbacks(config, RunDir(run_dir), config.model.network(), quiet) if writes else []
        if writes:  # checkpoint.pt and best.pt (weights and SGD momentum, float32), each written beside a copy
            weights = sum(p.numel() for module in (model, matcher) for p in module.parameters())
            check_free_space(run_dir, 3 * 2 * 4 * weights, "the run's checkpoints")
    trainer = Trainer(
        model,
        criterion,
        build_optimizer(model, matcher, config),
        sampler,
        loader,
        AdaptiveSchedule(
            config.schedule.step_factor,
            config.schedule.max_epochs,
            reference_epoch=0 if sampler.warmup.epochs is None else sampler.warmup.epochs + 2,
        ),
        callbacks=callbacks,
        guard=TrainingGuard(collapse_patience=o.collapse_patience) if guard is FROM_CONFIG else guard,
        validator=build_validator(config, held_out, device) if ctx.is_main else None,
        ctx=ctx,
        amp_dtype=autocast,
        clip_value=o.clip_value,
        accumulate=o.accumulate,
        freeze_bn=o.freeze_bn,
        logit_scale_floor=o.logit_scale_floor,
        lr_warmup_iters=o.lr_warmup_iters,
        max_iters_per_epoch=config.schedule.max_iters_per_epoch,
    )
    if resume:
        _resume(trainer, RunDir(run_dir).checkpoint, config)
    return trainer


def _initial_model(config: TrainConfig, resume: bool) -> tuple[nn.Module, QAConv]:
    """The network with its first weights: none when resuming (the checkpoint follows), a warm start
    (--init-from), or the pretrained backbone."""
    m = config.model
    warm = m.init_from and not resume
    model, matcher = build_model(m.network(), pretrained=None if resume or warm else m.pretrained)
    if warm:
        load_initial_weights(m.init_from, model, matcher, m.network())
    return model, matcher


def resumable(path: Path, config: TrainConfig, name: Any = None) -> tuple[dict[str, Any], dict[str, tuple]]:
    """(the training checkpoint at `path`, the option changes of resuming it with `config`), after refusing a
    checkpoint that is not a training one, another network, or a change a resumed run cannot make
    (qaconv.engine.resume)."""
    payload = read_checkpoint(path)
    missing = [k for k in ("optimizer", "schedule", "sampler", "rng", "epoch") if k not in payload]
    if missing:
        raise QAConvError(f"{path} cannot be resumed: it lacks {', '.join(missing)} (not a training checkpoint)")
    changes = check_resume(payload, config, name or (lambda option: option), str(path.parent))
    saved, wanted = payload["model_config"], dataclasses.asdict(config.model.network())
    differ = [f"{key} {saved.get(key)!r} there, {v!r} here" for key, v in wanted.items() if saved.get(key) != v]
    if differ:
        raise QAConvError(f"{path} holds another network than the run's options describe ({', '.join(differ)})")
    return payload, changes


def _resume(trainer: Trainer, path: Path, config: TrainConfig) -> None:
    payload, changes = resumable(path, config)
    load_state(trainer.model, payload["model"], f"{path} model")
    load_state(trainer.matcher, payload["matcher"], f"{path} matcher")
    trainer.load_state_dict(payload)
    fresh = build_optimizer(trainer.model, trainer.matcher, config)
    apply_changes(trainer, config, changes, fresh, build_warmup(config))
