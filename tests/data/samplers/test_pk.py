"""P x K sampling: random classes in chunks of P, K images each, every class once per epoch."""

import numpy as np
import pytest

from tests.data.samplers.conftest import chunk_classes, epoch, make_labels, pk_sampler


@pytest.mark.parametrize("num_classes", [12, 13])
def test_pk_batches_have_p_distinct_classes_of_k_images_and_cover_every_class(num_classes):
    labels = make_labels(num_classes=num_classes)
    sampler = pk_sampler(labels, batch_size=8, num_instances=2)
    expected = -(-num_classes // 4)
    assert len(sampler) == expected
    batches = epoch(sampler, 0)
    assert len(batches) == expected
    seen = []
    for batch in batches:
        assert len(batch) == 8
        classes = chunk_classes(sampler, labels, batch)
        assert len(set(classes)) == 4
        seen.extend(classes)
    counts = np.bincount(seen, minlength=num_classes)
    assert counts.min() == 1
    assert counts.sum() - num_classes == expected * 4 - num_classes  # only the last chunk's filler repeats


def test_pk_deterministic_for_seed_and_epoch_and_resumable():
    labels = make_labels(num_classes=20)
    a = pk_sampler(labels, batch_size=8, seed=2)
    b = pk_sampler(labels, batch_size=8, seed=2)
    a0, a1, a2 = epoch(a, 0), epoch(a, 1), epoch(a, 2)
    assert epoch(b, 0) == a0 and a0 != a1
    resumed = pk_sampler(labels, batch_size=8, seed=2)
    epoch(b, 1)
    resumed.load_state_dict(b.state_dict())
    assert epoch(resumed, 2) == a2


def test_pk_batches_by_hand_when_every_class_has_k_images():
    labels = np.repeat([5, 7, 9, 11, 13, 15], 2)
    sampler = pk_sampler(labels, batch_size=4, num_instances=2)
    for e in range(3):
        batches = epoch(sampler, e)
        assert sorted(i for b in batches for i in b) == list(range(12))  # each class once, both its images
        for batch in batches:
            assert sorted(batch[:2]) in ([0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11])
