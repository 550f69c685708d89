"""Every class's shuffled image list and persistent cursor (the published sampler's `sam_pointer`), vectorised.

Images of a class are drawn as in the published graph sampler: every class keeps a shuffled list of its
images and a cursor that persists across epochs; a class takes its next K images at the cursor, and when
its list runs out it is reshuffled and the cursor starts again at 0 (so a class with fewer than K images
repeats images inside a batch). An epoch's demand for every class is known before any image is drawn, so
each class gets the rest of its current list followed by as many fresh permutations as it needs, all built
with a few NumPy sorts instead of a Python loop per class.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from torch import Tensor

from qaconv.errors import QAConvError


def epoch_rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _permute_segments(values: np.ndarray, segment_keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shuffle `values` inside each run of equal, ascending `segment_keys` (one sort for all segments)."""
    return values[np.argsort(segment_keys + rng.random(len(values)), kind="quicksort")]


class ClassLists:
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
        self.lists = _permute_segments(self.members, self.member_class, epoch_rng(seed, 0))
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
