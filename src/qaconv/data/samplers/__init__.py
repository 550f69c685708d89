"""Batch samplers for deep metric learning: P x K (`PKSampler`) and Graph Sampling (`GraphSampler`).

Both yield lists of dataset indices, one list per batch: P = batch_size / K classes, each with K images,
a class at most once per batch. Pass them as `DataLoader(dataset, batch_sampler=...)`. Both derive from
the public `ClassBatchSampler` (class_lists draws the images; base holds epochs, distribution and resume
state); `build_sampler(name, ...)` picks one by its `--sampler` name.
"""

from qaconv.data.samplers.base import ClassBatchSampler, pk_table
from qaconv.data.samplers.graph import GraphSampler, NeighborsFn
from qaconv.data.samplers.pk import PKSampler
from qaconv.data.samplers.registry import SAMPLERS, build_sampler, register_sampler
from qaconv.data.samplers.seeded import SeededBatches
from qaconv.data.samplers.warmup import GraphWarmup

__all__ = [
    "SAMPLERS",
    "ClassBatchSampler",
    "GraphSampler",
    "GraphWarmup",
    "NeighborsFn",
    "PKSampler",
    "SeededBatches",
    "build_sampler",
    "pk_table",
    "register_sampler",
]
