"""P x K sampling: random classes, K images each."""

from __future__ import annotations

import math

import numpy as np

from qaconv.data.samplers.base import ClassBatchSampler, pk_table
from qaconv.data.samplers.registry import register_sampler


@register_sampler("pk")
class PKSampler(ClassBatchSampler):
    """P x K batch sampler: P = batch_size / K classes per batch, K images each.

    Each epoch shuffles the classes and walks them in chunks of P, so every class appears in exactly one
    batch, except that the last chunk, when short, is filled up with the first classes of the shuffled
    order (which then appear twice). Batches per epoch: ceil(num_classes / P), divided among ranks as
    `len()` says. Images come from each class's cursor over its reshuffled list (see class_lists).
    """

    def num_batches(self) -> int:
        return math.ceil(self.num_classes / self.classes_per_batch)

    def batch_classes(self, rng: np.random.Generator) -> np.ndarray:
        return pk_table(self.num_classes, self.classes_per_batch, rng)
