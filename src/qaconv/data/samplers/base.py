"""The public base class of class-structured batch samplers: P = batch_size / K classes of K images per batch.

A subclass says how many batches an epoch has (`num_batches`) and which classes each holds
(`batch_classes`); the base draws the images from every class's cursor (`ClassLists`), shuffles the batch
order and hands each rank its share.

Epochs: call `set_epoch(e)` before iterating (or iterate again: each `iter()` builds the epoch it was set
to, then moves on to the next). Everything random in epoch e comes from a generator seeded with (seed, e),
and the images also depend on the cursors left by earlier epochs, so two samplers with the same labels and
seed that go through the same epochs yield the same batches; `state_dict()` / `load_state_dict()` carry
the cursors across an interrupted run.

Distributed: every rank builds the same batch list (same seed, same class table) and keeps whole batches i
with i % world_size == rank. The list is padded by wrapping around to a multiple of world_size, so every
rank yields ceil(N / world_size) batches and every batch of the epoch is seen by some rank (the first few
batches of the shuffled order are seen twice).
"""

from __future__ import annotations

import abc
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from qaconv.data.samplers.class_lists import ClassLists, epoch_rng
from qaconv.data.samplers.warmup import GraphWarmup
from qaconv.errors import QAConvError


def pk_table(num_classes: int, classes_per_batch: int, rng: np.random.Generator) -> np.ndarray:
    """[ceil(C / P), P] class positions: a shuffled walk over all classes in chunks of P, the last chunk
    filled up with the first classes of the walk (which then appear twice)."""
    order = rng.permutation(num_classes)
    batches = math.ceil(num_classes / classes_per_batch)
    fill = batches * classes_per_batch - num_classes
    return np.concatenate([order, order[:fill]]).reshape(-1, classes_per_batch)


class ClassBatchSampler(Sampler[list[int]], abc.ABC):
    """Yields lists of dataset indices, one per batch: P classes x K images, a class at most once per batch.

    Attributes every sampler has: `name` (its `--sampler` name), `uses_graph` (whether it takes a
    neighbours function and a warm-up), `warmup` (a `GraphWarmup`; none by default), `graph_epoch(e)`
    (whether epoch e's batches come from a graph) and `last_graph_seconds` (the last graph's cost)."""

    name = ""
    uses_graph = False
    last_graph_seconds = 0.0

    def __init__(
        self, labels: Any, batch_size: int = 64, num_instances: int = 2, seed: int = 0, rank: int = 0,
        world_size: int = 1,
    ) -> None:  # fmt: skip
        super().__init__()
        _check_shape(batch_size, num_instances, rank, world_size, seed)
        self._lists = ClassLists(labels, int(seed))
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.classes_per_batch = batch_size // num_instances
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.warmup = GraphWarmup(epochs=0)
        self.last_batch_classes: np.ndarray | None = None
        num_classes = self._lists.num_classes
        if num_classes < self.classes_per_batch:
            raise QAConvError(
                f"a batch of {batch_size} with {num_instances} images per class needs "
                f"{self.classes_per_batch} classes, but the labels have only {num_classes}"
            )
        short = int((self._lists.counts < num_instances).sum())
        if short:
            warnings.warn(
                f"{short} of {num_classes} classes have fewer than num_instances={num_instances} images; "
                "their images repeat inside a batch",
                stacklevel=3,
            )

    @property
    def classes(self) -> np.ndarray:
        """The distinct labels in sorted order; class position i in batch tables means classes[i]."""
        return self._lists.classes

    @property
    def num_classes(self) -> int:
        return self._lists.num_classes

    @property
    def num_samples(self) -> int:
        return self._lists.num_samples

    def graph_epoch(self, epoch: int) -> bool:
        """Whether epoch `epoch` (1-based) draws its batches from a graph of nearest classes."""
        return False

    @abc.abstractmethod
    def num_batches(self) -> int:
        """Batches in the current epoch, all ranks together (before the distributed padding)."""

    @abc.abstractmethod
    def batch_classes(self, rng: np.random.Generator) -> np.ndarray:
        """[num_batches, P] class positions of the current epoch; images are drawn in row-major order."""

    def __len__(self) -> int:
        """Batches this rank yields in the current epoch (exact at any time, including before the first)."""
        return math.ceil(self.num_batches() / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next `iter()` builds (its randomness comes from (seed, epoch))."""
        if epoch < 0:
            raise QAConvError(f"epoch must be non-negative, got {epoch}")
        self.epoch = int(epoch)

    def _build_epoch(self) -> np.ndarray:
        rng = epoch_rng(self.seed, 1, self.epoch)
        table = self.batch_classes(rng)
        images = self._lists.take(table.ravel(), self.num_instances, rng).reshape(len(table), self.batch_size)
        order = rng.permutation(len(table))
        self.last_batch_classes = table[order]
        mine = np.resize(order, len(self) * self.world_size)[self.rank :: self.world_size]
        return images[mine]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._build_epoch()  # built (and cursors advanced) when iter() is called
        self.epoch += 1
        return (batch.tolist() for batch in batches)

    def state_dict(self) -> dict[str, Any]:
        """Cursors, class lists, seed and the next epoch: enough for a resumed run to continue identically.

        The random generator of an epoch is derived from (seed, epoch), so no generator state is stored.
        Take it between epochs; the tensors are plain int64 so `torch.load(weights_only=True)` reads them.
        """
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "labels_digest": self._lists.digest,
            "lists": torch.from_numpy(self._lists.lists.copy()),
            "cursors": torch.from_numpy(self._lists.cursors.copy()),
        }

    def same_labels(self, state: dict[str, Any]) -> bool:
        """Whether `state` (a `state_dict()`) was taken with these labels, so that it can be loaded."""
        return state.get("labels_digest") == self._lists.digest

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` output (taken with the same labels; rank and world size may differ)."""
        missing = {"seed", "epoch", "labels_digest", "lists", "cursors"} - set(state)
        if missing:
            raise QAConvError(f"sampler state_dict lacks {sorted(missing)}")
        if state["labels_digest"] != self._lists.digest:
            raise QAConvError("sampler state_dict was saved for a different set of labels (training data changed?)")
        lists = np.asarray(state["lists"], dtype=np.int64)
        cursors = np.asarray(state["cursors"], dtype=np.int64)
        if not self._lists.valid_state(lists, cursors):
            raise QAConvError("sampler state_dict has inconsistent lists or cursors for these labels")
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self._lists.lists = lists.copy()
        self._lists.cursors = cursors.copy()


def _check_shape(batch_size: int, num_instances: int, rank: int, world_size: int, seed: Any) -> None:
    if num_instances < 1:
        raise QAConvError(f"num_instances (K) must be at least 1, got {num_instances}")
    if batch_size < 1 or batch_size % num_instances:
        raise QAConvError(f"batch_size {batch_size} must be a positive multiple of num_instances (K) {num_instances}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise QAConvError(f"rank {rank} must be in [0, world_size) with world_size >= 1, got {world_size}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise QAConvError(f"seed must be a non-negative integer, got {seed!r}")
