"""Batches whose items carry their own augmentation seed, so augmentation is independent of processes and resume."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from qaconv.data.samplers.base import ClassBatchSampler


class SeededBatches:
    """A batch sampler whose items carry their own augmentation seed: `(index, (*key, batch, slot))`.

    `batch` is the batch's number in the epoch over all ranks (a rank's i-th batch is number
    i * world_size + rank, the samplers' partition) and `slot` its position in the batch.
    `ImageDataset` augments such an item from that seed alone, so an image's augmentation does not
    depend on the number of processes, loader workers or where a run was resumed: N processes with
    batch B see the same images and augmentations as one process that accumulates N batches of B.
    """

    def __init__(self, batch_sampler: ClassBatchSampler, key: Sequence[int]) -> None:
        self.batch_sampler = batch_sampler
        self.key = tuple(int(k) for k in key)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[list[tuple[int, tuple[int, ...]]]]:
        sampler = self.batch_sampler
        for i, batch in enumerate(sampler):
            number = i * sampler.world_size + sampler.rank
            yield [(index, (*self.key, number, slot)) for slot, index in enumerate(batch)]
