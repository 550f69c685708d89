"""Batches whose items carry their own augmentation seed, numbered as one process numbers them."""

import numpy as np

from qaconv.data.samplers import PKSampler, SeededBatches


def test_seeded_batches_number_every_rank_batch_as_the_single_process_does():
    labels = np.repeat(np.arange(12), 4)
    single = list(SeededBatches(PKSampler(labels, batch_size=8, num_instances=2, seed=0), (5, 1)))
    ranks = [
        list(SeededBatches(PKSampler(labels, batch_size=8, num_instances=2, seed=0, rank=r, world_size=2), (5, 1)))
        for r in range(2)
    ]
    interleaved = [batch for pair in zip(*ranks, strict=True) for batch in pair]
    assert len(single) == 3 and interleaved[:3] == single  # the 4th is the distributed padding
    assert single[1][2] == (single[1][2][0], (5, 1, 1, 2))


def test_items_are_the_samplers_indices_with_the_key_the_batch_number_and_the_slot():
    labels = np.repeat(np.arange(6), 2)
    plain = PKSampler(labels, batch_size=4, num_instances=2, seed=1)
    seeded = SeededBatches(PKSampler(labels, batch_size=4, num_instances=2, seed=1), [7])
    assert len(seeded) == len(plain) == 3
    for number, (batch, items) in enumerate(zip(plain, seeded, strict=True)):
        assert [index for index, _ in items] == batch
        assert [key for _, key in items] == [(7, number, slot) for slot in range(4)]
