"""What a resumed run may change, and how a change takes effect, so that a run's records stay true.

A resumed run continues from its checkpoint: weights, optimizer, schedule, sampler, random state. An option
that differs from the one the checkpoint was trained with (a flag given with `--resume`, or config.yaml
edited) either takes effect from the next epoch, and is recorded in that epoch's line of metrics.jsonl
and printed, or is refused before any work, with the reason:

- refused always (`KEPT_ON_RESUME`): the network and where its weights come from, the data set, the batch's
  shape, the loss, the seed (the random state continues from the checkpoint), the recipe;
- refused once it has acted: the schedule's step (`--step-factor`) after the learning rates were decayed,
  the graph-sampling warm-up (`--gs-warmup`) after graph sampling started;
- everything else takes effect: the optimizer's learning rates, momentum and weight decay are set from the
  options (times the decay already applied), the schedule from the new step and length, and the other
  parts are built from the options anyway.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from qaconv.config import ModelConfig, TrainConfig, config_from_dict, get_path, leaves
from qaconv.engine.schedule import DECAY
from qaconv.errors import QAConvError

_WEIGHTS = "a resumed run's weights come from its checkpoint"
_SAMPLER = "the batch sampler's state belongs to the run's images and batch shape"
_LOSS = "a different loss makes a different method; start a new run with --init-from"

#: {option: why a resumed run cannot change it}
KEPT_ON_RESUME: dict[str, str] = {
    **{f"model.{f.name}": "a run's network cannot change" for f in dataclasses.fields(ModelConfig)},
    "model.pretrained": _WEIGHTS,
    "model.init_from": _WEIGHTS,
    "data.dataset": _SAMPLER,
    "data.data_dir": _SAMPLER,
    "data.combine_all": _SAMPLER,
    "sampler.name": _SAMPLER,
    "sampler.batch_size": _SAMPLER,
    "sampler.num_instances": _SAMPLER,
    "optimization.loss": _LOSS,
    "optimization.margin": _LOSS,
    "optimization.warmup_loss": _LOSS,
    "run.seed": "the random state continues from the checkpoint, so another seed would not take effect",
    "recipe": "a recipe is a set of options; change the options themselves",
    "validation.share": "the held-out identities were taken out of the training set the sampler's state is for",
}


def option_changes(trained: dict[str, Any] | None, config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """{option: (value the checkpoint was trained with, value now)} of every option that differs; {} when the
    checkpoint records no options that can be read (very old runs)."""
    if not isinstance(trained, dict):  # compat(0.2) unrecorded-options: very old checkpoints
        return {}
    try:
        before = config_from_dict(TrainConfig, trained, "the checkpoint's options")
    except QAConvError:
        return {}
    changes = {}
    for path, _, _ in leaves(TrainConfig):
        old, new = get_path(before, path), get_path(config, path)
        if old != new:
            changes[path] = (old, new)
    return changes


def check_resume(
    checkpoint: dict[str, Any], config: TrainConfig, name: Any, run: str = "RUN"
) -> dict[str, tuple[Any, Any]]:
    """The option changes of resuming `checkpoint` (a training checkpoint's payload, of the run folder `run`)
    with `config`, after refusing those a resumed run cannot make (see the module docstring); `name(path)` is
    how an option is called in messages (its flag)."""
    changes = option_changes(checkpoint.get("config"), config)
    warmup = checkpoint.get("warmup") or {}  # compat(0.2) warmup-state
    for path, (old, new) in changes.items():
        why = KEPT_ON_RESUME.get(path)
        if path == "data.dataset" and why and _same_folder(old, new):
            continue
        if path == "schedule.step_factor" and checkpoint["schedule"].get("lr_stepped"):
            why = "the learning rates were decayed already"
        if path in ("sampler.gs_warmup", "sampler.gs_warmup_accuracy", "sampler.gs_warmup_share"):
            started = warmup.get("epochs") is not None and checkpoint["epoch"] >= warmup["epochs"]
            why = "graph sampling has started already" if started else None
        if why:
            raise QAConvError(
                f"--resume {run}: {name(path)} {_show(new)} differs from the run's {_show(old)}, and {why}; resume "
                f"without it, or start a new run (--init-from {run} starts one from this run's weights)"
            )
    return changes


def apply_changes(
    trainer: Any, config: TrainConfig, changes: dict[str, tuple[Any, Any]], fresh: Any, warmup: Any
) -> None:
    """Make the options take effect where the checkpoint's state would override them: the optimizer's learning
    rates (those of `fresh`, an optimizer built from the options, times the decay already applied), momentum
    and weight decay, the schedule's step and length, and `warmup` (built from the options) when the warm-up
    changed before it switched; the changes go into the next epoch's statistics."""
    decay = DECAY if trainer.schedule.lr_stepped else 1.0
    for group, new in zip(trainer.optimizer.param_groups, fresh.param_groups, strict=True):
        group["base_lr"] = group["lr"] = new["lr"] * decay
        group["momentum"], group["weight_decay"] = new["momentum"], new["weight_decay"]
    trainer.schedule.set_max_epochs(config.schedule.max_epochs)
    trainer.schedule.step_factor = config.schedule.step_factor
    if {"sampler.gs_warmup", "sampler.gs_warmup_accuracy", "sampler.gs_warmup_share"} & set(changes):
        trainer.sampler.warmup = warmup
        trainer.schedule.reference_epoch = 0 if warmup.epochs is None else warmup.epochs + 2
    trainer.changes = {path: {"before": old, "after": new} for path, (old, new) in changes.items()}


def _same_folder(a: Any, b: Any) -> bool:
    import os

    return os.path.exists(str(a)) and os.path.realpath(str(a)) == os.path.realpath(str(b))


def _show(value: Any) -> str:
    return ",".join(value) if isinstance(value, list) else "none" if value is None else str(value)
