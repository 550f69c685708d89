"""Graph Sampling (Liao & Shao, CVPR 2022): every class anchors one batch with its nearest classes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from qaconv.data.samplers.base import ClassBatchSampler, pk_table
from qaconv.data.samplers.registry import register_sampler
from qaconv.data.samplers.warmup import GraphWarmup
from qaconv.errors import QAConvError

NeighborsFn = Callable[[Tensor, int], Tensor]


@register_sampler("gs")
class GraphSampler(ClassBatchSampler):
    """Graph Sampling (Liao & Shao, CVPR 2022): every class anchors one batch with its nearest classes.

    Each epoch: one random representative image per class (classes in sorted label order) goes to
    `neighbors_fn(sample_indices, k)`, which returns a [num_classes, k] table of the k = P - 1
    nearest other classes (as class positions) for each class. The batch of class i is its k
    neighbours and then i itself, K images each from the classes' cursors; the batch order is
    shuffled. Batches per epoch = num_classes (so iterations per epoch = ceil(num_classes /
    world_size) per rank). `neighbors_fn` is called on every rank, once per epoch, when `iter()`
    is called; it must return the same table on every rank (`qaconv.engine.neighbors` builders do).

    Inspection: `last_representatives` (the dataset indices sent to `neighbors_fn`),
    `last_neighbors` ([num_classes, k] class positions), `last_batch_classes` ([num_classes, P],
    in batch order, anchor last), `class_frequency()` (batches per class: hub classes score high) and
    `last_graph_seconds` (the time `neighbors_fn` took).

    Warm-up (`warmup`: a number of epochs N, QAConv 2.0's pre-epochs, or a `GraphWarmup` that switches on
    its own): the warm-up epochs are random P x K epochs with no graph, for features that cannot yet tell
    near classes from far ones. Like QAConv 2.0's pre-epoch, a warm-up epoch sees about as many images as
    the training set holds: ceil(num_samples / batch_size) batches, made of consecutive passes over the
    shuffled classes (each class once per pass).
    """

    uses_graph = True

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | Tensor,
        neighbors_fn: NeighborsFn,
        batch_size: int = 64,
        num_instances: int = 2,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        warmup: int | GraphWarmup = 0,
    ) -> None:
        super().__init__(labels, batch_size, num_instances, seed, rank, world_size)
        self.warmup = warmup if isinstance(warmup, GraphWarmup) else GraphWarmup(epochs=int(warmup))
        self.last_graph_seconds = 0.0
        if not callable(neighbors_fn):
            raise QAConvError(f"neighbors_fn must be callable (sample_indices, k) -> table, got {neighbors_fn!r}")
        self.neighbors_fn = neighbors_fn
        self.last_representatives: np.ndarray | None = None
        self.last_neighbors: np.ndarray | None = None

    @property
    def warming_up(self) -> bool:
        """Whether the current epoch is a warm-up epoch of random P x K batches."""
        return self.warmup.in_warmup(self.epoch + 1)

    def graph_epoch(self, epoch: int) -> bool:
        return not self.warmup.in_warmup(epoch)

    def num_batches(self) -> int:
        return math.ceil(self._lists.num_samples / self.batch_size) if self.warming_up else self.num_classes

    def batch_classes(self, rng: np.random.Generator) -> np.ndarray:
        self.last_graph_seconds = 0.0
        if self.warming_up:
            self.last_representatives = self.last_neighbors = None
            passes = math.ceil(self.num_batches() / math.ceil(self.num_classes / self.classes_per_batch))
            tables = [pk_table(self.num_classes, self.classes_per_batch, rng) for _ in range(passes)]
            return np.concatenate(tables)[: self.num_batches()]
        num, k = self.num_classes, self.classes_per_batch - 1
        representatives = self._lists.random_members(rng)
        if k:
            start = time.perf_counter()
            table = self.neighbors_fn(torch.from_numpy(representatives), k)
            self.last_graph_seconds = time.perf_counter() - start
            neighbors = self._checked_neighbors(table, k)
        else:
            neighbors = np.empty((num, 0), dtype=np.int64)
        self.last_representatives = representatives
        self.last_neighbors = neighbors
        return np.concatenate([neighbors, np.arange(num)[:, None]], axis=1)

    def _checked_neighbors(self, table: Any, k: int) -> np.ndarray:
        num = self.num_classes
        table = np.asarray(table.detach().cpu() if isinstance(table, Tensor) else table)
        if table.shape != (num, k):
            raise QAConvError(f"neighbors_fn returned a table of shape {table.shape}, expected ({num}, {k})")
        if not np.issubdtype(table.dtype, np.integer):
            raise QAConvError(f"neighbors_fn must return integer class positions, got dtype {table.dtype}")
        table = table.astype(np.int64)
        if table.min() < 0 or table.max() >= num:
            raise QAConvError(f"neighbors_fn returned class positions outside [0, {num})")
        if (table == np.arange(num)[:, None]).any():
            raise QAConvError("neighbors_fn listed a class as its own neighbour")
        ordered = np.sort(table, axis=1)
        if (ordered[:, 1:] == ordered[:, :-1]).any():
            raise QAConvError("neighbors_fn listed the same neighbour twice for one class")
        return table

    def class_frequency(self) -> np.ndarray:
        """How many batches of the last epoch (all ranks) each class appeared in: 1 + times it was a neighbour."""
        if self.last_neighbors is None:
            raise QAConvError("class_frequency() needs one epoch to have been built (iterate the sampler first)")
        return 1 + np.bincount(self.last_neighbors.ravel(), minlength=self.num_classes)
