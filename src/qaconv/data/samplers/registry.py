"""Batch samplers by name, as `--sampler` chooses them: a dict and a decorator (the timm habit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qaconv.errors import QAConvError

SAMPLERS: dict[str, type] = {}


def register_sampler(name: str) -> Callable[[type], type]:
    """Class decorator: make the sampler available as `--sampler name` (the class's `name` too)."""

    def decorator(cls: type) -> type:
        SAMPLERS[name] = cls
        cls.name = name
        return cls

    return decorator


def build_sampler(
    name: str,
    labels: Any,
    neighbors_fn: Callable | None = None,
    *,
    warmup: Any = 0,
    **shape: Any,
) -> Any:
    """The registered sampler `name` over `labels`. `shape`: batch_size, num_instances, seed, rank,
    world_size (every sampler takes them); a sampler that builds a graph also takes `neighbors_fn` (what it
    scores classes with) and `warmup` (its P x K epochs first: a number or a GraphWarmup)."""
    if name not in SAMPLERS:
        raise QAConvError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")
    cls = SAMPLERS[name]
    if cls.uses_graph:
        return cls(labels, neighbors_fn, warmup=warmup, **shape)
    return cls(labels, **shape)
