"""Batch samplers by name, as `--sampler` chooses them: a dict and a decorator (the timm habit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qaconv.errors import QAConvError

SAMPLERS: dict[str, type] = {}


def register_sampler(name: str) -> Callable[[type], type]:
    """Class decorator: make the sampler available as `name`; the class builds itself with
    `from_options(labels, neighbors_fn, batch_size=..., num_instances=..., seed=..., rank=...,
    world_size=..., warmup_epochs=...)` and takes what it needs."""

    def decorator(cls: type) -> type:
        SAMPLERS[name] = cls
        return cls

    return decorator


def build_sampler(name: str, labels: Any, neighbors_fn: Callable | None = None, **options: Any) -> Any:
    """The registered sampler `name` over `labels` (neighbors_fn: what a graph sampler scores classes with)."""
    if name not in SAMPLERS:
        raise QAConvError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")
    return SAMPLERS[name].from_options(labels, neighbors_fn, **options)
