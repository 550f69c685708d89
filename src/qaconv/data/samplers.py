"""Batch samplers for deep metric learning: P x K (`PKSampler`) and Graph Sampling (`GraphSampler`).

Both yield lists of dataset indices, one list per batch: P = batch_size / K classes, each with
K images, a class at most once per batch. Pass them as `DataLoader(dataset, batch_sampler=...)`.

Images of a class are drawn as in the published graph sampler: every class keeps a shuffled list
of its images and a cursor that persists across epochs; a class takes its next K images at the
cursor, and when its list runs out it is reshuffled and the cursor starts again at 0 (so a class
with fewer than K images repeats images inside a batch). The cursor logic is vectorised: an
epoch's demand for every class is known before any image is drawn, so each class gets the rest
of its current list followed by as many fresh permutations as it needs, all built with a few
NumPy sorts instead of a Python loop per class.

Epochs: call `set_epoch(e)` before iterating (or iterate again: each `iter()` builds the epoch
it was set to, then moves on to the next). Everything random in epoch e comes from a generator
seeded with (seed, e), and the images also depend on the cursors left by earlier epochs, so two
samplers with the same labels and seed that go through the same epochs yield the same batches;
`state_dict()` / `load_state_dict()` carry the cursors across an interrupted run.

Distributed: every rank builds the same batch list (same seed, same neighbour table) and keeps
whole batches i with i % world_size == rank. The list is padded by wrapping around to a multiple
of world_size, so every rank yields ceil(N / world_size) batches and every batch of the epoch is
seen by some rank (the first few batches of the shuffled order are seen twice).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from qaconv.errors import QAConvError

NeighborsFn = Callable[[Tensor, int], Tensor]


def _epoch_rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _permute_segments(values: np.ndarray, segment_keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shuffle `values` inside each run of equal, ascending `segment_keys` (one sort for all segments)."""
    return values[np.argsort(segment_keys + rng.random(len(values)), kind="quicksort")]


class _ClassLists:
    """Every class's shuffled image list and persistent cursor (the published sampler's `sam_pointer`)."""

    def __init__(self, labels: Any, seed: int) -> None:
        labels = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels)
        if labels.ndim != 1:
            raise QAConvError(f"labels must be one label per dataset sample (1-D), got shape {labels.shape}")
        if labels.size == 0:
            raise QAConvError("labels is empty: the sampler needs at least one labelled sample")
        self.classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        self.num_classes = len(self.classes)
        self.num_samples = len(labels)
        self.counts = counts.astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        # members[offsets[c] : offsets[c] + counts[c]] = dataset indices of class c, ascending
        self.members = np.argsort(inverse, kind="stable").astype(np.int64)
        self.member_class = np.repeat(np.arange(self.num_classes), self.counts)
        self.member_rank = np.arange(self.num_samples) - self.offsets[self.member_class]
        self.digest = hashlib.sha1(self.member_class.tobytes() + self.members.tobytes()).hexdigest()
        self.lists = _permute_segments(self.members, self.member_class, _epoch_rng(seed, 0))
        self.cursors = np.zeros(self.num_classes, dtype=np.int64)

    def valid_state(self, lists: np.ndarray, cursors: np.ndarray) -> bool:
        """Whether every class's slice of `lists` holds exactly its images and every cursor is inside it."""
        if lists.shape != self.members.shape or cursors.shape != self.cursors.shape:
            return False
        if not ((cursors >= 0) & (cursors < self.counts)).all():
            return False
        return np.array_equal(lists[np.lexsort((lists, self.member_class))], self.members)

    def random_members(self, rng: np.random.Generator) -> np.ndarray:
        """One uniformly drawn dataset index per class, in class order."""
        pick = (rng.random(self.num_classes) * self.counts).astype(np.int64)
        return self.members[self.offsets + np.minimum(pick, self.counts - 1)]

    def take(self, classes: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """Images [len(classes), k]: entry e takes class classes[e]'s next k images, entries in order.

        Equivalent to looping over the entries and, for each, taking k images at the class's cursor,
        reshuffling its list and resetting the cursor to 0 each time the list ends.
        """
        num = self.num_classes
        appearances = np.bincount(classes, minlength=num)
        # occurrence of each entry among the entries of its class (0 for the first, 1 for the second, ...)
        by_class = np.argsort(classes, kind="stable")
        occurrence = np.empty(len(classes), dtype=np.int64)
        occurrence[by_class] = np.arange(len(classes)) - np.repeat(np.cumsum(appearances) - appearances, appearances)
        # stream of class c = current list, then `fresh[c]` new permutations; positions cursor .. end-1 are used
        end = self.cursors + appearances * k
        fresh = end // self.counts
        stream_len = (fresh + 1) * self.counts
        stream_start = np.cumsum(stream_len) - stream_len
        stream_class = np.repeat(np.arange(num), stream_len)
        local = np.arange(stream_len.sum()) - stream_start[stream_class]
        within = local % self.counts[stream_class]
        segment_start = stream_start[stream_class] + local - within  # one key per (class, permutation)
        stream = _permute_segments(self.members[self.offsets[stream_class] + within], segment_start, rng)
        stream[stream_start[self.member_class] + self.member_rank] = self.lists  # permutation 0 = current list
        position = self.cursors[classes] + occurrence * k
        images = stream[(stream_start[classes] + position)[:, None] + np.arange(k)]
        # the last permutation becomes the current list; the cursor is what is left of `end`
        self.lists = stream[(stream_start + fresh * self.counts)[self.member_class] + self.member_rank]
        self.cursors = end - fresh * self.counts
        return images


class _ClassBatchSampler(Sampler[list[int]]):
    """Shared machinery: P x K batches from a per-epoch [batches, P] table of class positions."""

    def __init__(self, labels: Any, batch_size: int, num_instances: int, seed: int, rank: int, world_size: int) -> None:
        super().__init__()
        if num_instances < 1:
            raise QAConvError(f"num_instances (K) must be at least 1, got {num_instances}")
        if batch_size < 1 or batch_size % num_instances:
            raise QAConvError(
                f"batch_size {batch_size} must be a positive multiple of num_instances (K) {num_instances}"
            )
        if world_size < 1 or not 0 <= rank < world_size:
            raise QAConvError(f"rank {rank} must be in [0, world_size) with world_size >= 1, got {world_size}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise QAConvError(f"seed must be a non-negative integer, got {seed!r}")
        self._lists = _ClassLists(labels, int(seed))
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.classes_per_batch = batch_size // num_instances
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
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

    def _num_batches(self) -> int:
        """Batches in one epoch, all ranks together (before the distributed padding)."""
        raise NotImplementedError

    def _batch_classes(self, rng: np.random.Generator) -> np.ndarray:
        """[num_batches, P] class positions; images are drawn in row-major order of this table."""
        raise NotImplementedError

    def __len__(self) -> int:
        """Batches this rank yields per epoch (exact at any time, including before the first epoch)."""
        return math.ceil(self._num_batches() / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next `iter()` builds (its randomness comes from (seed, epoch))."""
        if epoch < 0:
            raise QAConvError(f"epoch must be non-negative, got {epoch}")
        self.epoch = int(epoch)

    def _build_epoch(self) -> np.ndarray:
        rng = _epoch_rng(self.seed, 1, self.epoch)
        table = self._batch_classes(rng)
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


class PKSampler(_ClassBatchSampler):
    """P x K batch sampler: P = batch_size / K classes per batch, K images each.

    Each epoch shuffles the classes and walks them in chunks of P, so every class appears in
    exactly one batch, except that the last chunk, when short, is filled up with the first
    classes of the shuffled order (which then appear twice). Batches per epoch:
    ceil(num_classes / P), divided among ranks as `len()` says. Images come from each class's
    cursor over its reshuffled list (see the module docstring).
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | Tensor,
        batch_size: int = 64,
        num_instances: int = 2,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(labels, batch_size, num_instances, seed, rank, world_size)

    def _num_batches(self) -> int:
        return math.ceil(self.num_classes / self.classes_per_batch)

    def _batch_classes(self, rng: np.random.Generator) -> np.ndarray:
        order = rng.permutation(self.num_classes)
        fill = self._num_batches() * self.classes_per_batch - self.num_classes
        return np.concatenate([order, order[:fill]]).reshape(-1, self.classes_per_batch)


class GraphSampler(_ClassBatchSampler):
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
    in batch order, anchor last) and `class_frequency()` (batches per class: hub classes score high).
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | Tensor,
        neighbors_fn: NeighborsFn,
        batch_size: int = 64,
        num_instances: int = 2,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(labels, batch_size, num_instances, seed, rank, world_size)
        if not callable(neighbors_fn):
            raise QAConvError(f"neighbors_fn must be callable (sample_indices, k) -> table, got {neighbors_fn!r}")
        self.neighbors_fn = neighbors_fn
        self.last_representatives: np.ndarray | None = None
        self.last_neighbors: np.ndarray | None = None

    def _num_batches(self) -> int:
        return self.num_classes

    def _batch_classes(self, rng: np.random.Generator) -> np.ndarray:
        num, k = self.num_classes, self.classes_per_batch - 1
        representatives = self._lists.random_members(rng)
        if k:
            neighbors = self._checked_neighbors(self.neighbors_fn(torch.from_numpy(representatives), k), k)
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


class SeededBatches:
    """A batch sampler whose items carry their own augmentation seed: `(index, (*key, batch, slot))`.

    `batch` is the batch's number in the epoch over all ranks (a rank's i-th batch is number
    i * world_size + rank, the samplers' partition) and `slot` its position in the batch.
    `ImageDataset` augments such an item from that seed alone, so an image's augmentation does not
    depend on the number of processes, loader workers or where a run was resumed: N processes with
    batch B see the same images and augmentations as one process that accumulates N batches of B.
    """

    def __init__(self, batch_sampler: _ClassBatchSampler, key: Sequence[int]) -> None:
        self.batch_sampler = batch_sampler
        self.key = tuple(int(k) for k in key)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[list[tuple[int, tuple[int, ...]]]]:
        sampler = self.batch_sampler
        for i, batch in enumerate(sampler):
            number = i * sampler.world_size + sampler.rank
            yield [(index, (*self.key, number, slot)) for slot, index in enumerate(batch)]
