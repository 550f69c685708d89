"""Graph Sampling: every class anchors one batch with its nearest classes; warm-up epochs are random P x K."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from qaconv.data.samplers import GraphSampler, GraphWarmup
from qaconv.errors import QAConvError
from tests.data.samplers.conftest import TableNeighbors, chunk_classes, epoch, graph_sampler, make_labels


def test_graph_batches_are_anchor_plus_neighbours_and_every_class_anchors_once():
    labels = make_labels(num_classes=15)
    neighbors = TableNeighbors()
    sampler = graph_sampler(labels, neighbors_fn=neighbors, batch_size=8, num_instances=2)
    assert len(sampler) == 15  # exact before the first epoch
    batches = epoch(sampler, 0)
    assert len(batches) == len(sampler) == 15
    assert len(neighbors.calls) == 1
    anchors = []
    for i, batch in enumerate(batches):
        assert len(batch) == 8
        classes = chunk_classes(sampler, labels, batch)
        anchor = classes[-1]
        anchors.append(anchor)
        assert len(set(classes)) == 4
        np.testing.assert_array_equal(classes[:-1], sampler.last_neighbors[anchor])
        np.testing.assert_array_equal(classes, sampler.last_batch_classes[i])
    assert sorted(anchors) == list(range(15))
    assert anchors != sorted(anchors)  # batch order shuffled
    assert len(sampler) == 15  # and after it


def test_graph_representatives_are_one_image_of_each_class_in_sorted_label_order():
    labels = make_labels(num_classes=10)
    neighbors = TableNeighbors()
    sampler = graph_sampler(labels, neighbors_fn=neighbors, batch_size=6, num_instances=3)
    epoch(sampler, 0)
    indices, k = neighbors.calls[0]
    assert k == 1
    assert indices.dtype == torch.int64
    np.testing.assert_array_equal(labels[indices.numpy()], np.sort(np.unique(labels)))
    np.testing.assert_array_equal(indices.numpy(), sampler.last_representatives)


def test_graph_class_frequency_counts_anchor_and_neighbour_appearances():
    labels = make_labels(num_classes=9)
    sampler = graph_sampler(labels, batch_size=6, num_instances=2)
    with pytest.raises(QAConvError, match="iterate"):
        sampler.class_frequency()
    batches = epoch(sampler, 0)
    counts = np.zeros(9, dtype=int)
    for batch in batches:
        counts[chunk_classes(sampler, labels, batch)] += 1
    np.testing.assert_array_equal(sampler.class_frequency(), counts)
    assert counts.sum() == 9 * 3


def test_graph_single_image_class_repeats_and_warning_counts_short_classes():
    labels = np.array([0, 1, 1, 2, 2, 2, 3, 4, 4])
    with pytest.warns(UserWarning, match="2 of 5 classes have fewer than num_instances=2"):
        sampler = GraphSampler(labels, TableNeighbors(), batch_size=4, num_instances=2)
    for batch in epoch(sampler, 0):
        classes = chunk_classes(sampler, labels, batch)
        for j, c in enumerate(classes):
            if sampler.classes[c] in (0, 3):
                assert batch[2 * j] == batch[2 * j + 1]


def test_graph_deterministic_for_seed_and_epoch_and_different_across_epochs():
    labels = make_labels(num_classes=20)
    a = graph_sampler(labels, neighbors_fn=TableNeighbors(1), batch_size=8, seed=5)
    b = graph_sampler(labels, neighbors_fn=TableNeighbors(1), batch_size=8, seed=5)
    c = graph_sampler(labels, neighbors_fn=TableNeighbors(1), batch_size=8, seed=6)
    a0, a1 = epoch(a, 0), epoch(a, 1)
    assert epoch(b, 0) == a0 and epoch(b, 1) == a1
    assert a0 != a1
    assert epoch(c, 0) != a0


def test_graph_sampler_drives_a_dataloader():
    labels = make_labels(num_classes=10, min_count=2)
    data = TensorDataset(torch.arange(len(labels)), torch.from_numpy(labels))
    sampler = graph_sampler(labels, batch_size=6, num_instances=2)
    loader = DataLoader(data, batch_sampler=sampler)
    assert len(loader) == 10
    for idx, y in loader:
        assert len(idx) == 6
        assert torch.equal(y, torch.from_numpy(labels[idx.numpy()]))


def test_one_class_per_batch_needs_no_neighbours():
    labels = make_labels(num_classes=5)
    calls = TableNeighbors()
    sampler = graph_sampler(labels, neighbors_fn=calls, batch_size=2, num_instances=2)
    batches = epoch(sampler, 0)
    assert not calls.calls
    assert sorted(int(chunk_classes(sampler, labels, b)[0]) for b in batches) == list(range(5))


def bad_table(kind):
    def neighbors(idx, k):
        num = len(idx)
        table = (np.arange(num)[:, None] + 1 + np.arange(k)) % num
        if kind == "self":
            table[0, 0] = 0
        elif kind == "duplicate":
            table[1, 1] = table[1, 0]
        elif kind == "range":
            table[2, 0] = num
        elif kind == "shape":
            table = table[:, :-1]
        elif kind == "float":
            table = table.astype(np.float32)
        return torch.from_numpy(table)

    return neighbors


@pytest.mark.parametrize(
    ("kind", "message"),
    [("self", "own neighbour"), ("duplicate", "twice"), ("range", "outside"), ("shape", "shape"), ("float", "integer")],
)
def test_bad_neighbour_tables_raise(kind, message):
    sampler = graph_sampler(make_labels(num_classes=8), neighbors_fn=bad_table(kind), batch_size=6)
    with pytest.raises(QAConvError, match=message):
        iter(sampler)


def test_graph_sampler_accepts_a_tensor_of_labels():
    labels = make_labels(num_classes=6)
    a = epoch(graph_sampler(torch.from_numpy(labels), neighbors_fn=TableNeighbors(), batch_size=4), 0)
    b = epoch(graph_sampler(labels.tolist(), neighbors_fn=TableNeighbors(), batch_size=4), 0)
    assert a == b


def test_graph_batches_by_hand_for_single_image_classes():
    labels = np.array([40, 10, 30, 20])  # class positions: 10 -> 0 (index 1), 20 -> 1 (3), 30 -> 2 (2), 40 -> 3 (0)
    with pytest.warns(UserWarning, match="4 of 4 classes"):
        sampler = GraphSampler(labels, lambda idx, k: torch.tensor([[1], [0], [3], [2]]), batch_size=4)
    assert sorted(epoch(sampler, 0)) == [[0, 0, 2, 2], [1, 1, 3, 3], [2, 2, 0, 0], [3, 3, 1, 1]]


def test_warm_up_epochs_are_random_pk_epochs_as_long_as_the_training_set_without_the_graph():
    labels = make_labels(num_classes=10, min_count=2)
    neighbors = TableNeighbors()
    sampler = graph_sampler(labels, neighbors_fn=neighbors, batch_size=6, num_instances=2, warmup=2)
    expected = math.ceil(len(labels) / 6)
    assert expected > math.ceil(10 / 3)  # more than one pass over the classes
    for e in range(2):
        assert sampler.warming_up and len(sampler) == expected
        batches = epoch(sampler, e)
        assert len(batches) == expected
        assert all(len(set(chunk_classes(sampler, labels, b))) == 3 for b in batches)
        assert sampler.last_neighbors is None and sampler.last_representatives is None
        counts = np.bincount(sampler.last_batch_classes.ravel(), minlength=10)
        assert counts.min() >= 1 and counts.sum() == 3 * expected
    assert not neighbors.calls
    assert not sampler.warming_up and len(sampler) == 10
    assert len(epoch(sampler)) == 10 and len(neighbors.calls) == 1


def test_negative_warm_up_is_refused():
    with pytest.raises(QAConvError, match="warm-up epochs must be >= 0"):
        graph_sampler(make_labels(), batch_size=4, warmup=-1)


def test_an_automatic_warm_up_trains_pk_epochs_until_it_decides_and_the_graph_after():
    labels = make_labels(num_classes=10, min_count=2)
    neighbors = TableNeighbors()
    warmup = GraphWarmup.auto(accuracy=0.5, max_epochs=5)
    sampler = graph_sampler(labels, neighbors_fn=neighbors, batch_size=6, num_instances=2, warmup=warmup)
    for e in range(3):
        assert sampler.warming_up and not sampler.graph_epoch(e + 1)
        epoch(sampler, e)
        assert warmup.end_epoch(e + 1, accuracy=0.1 * (e + 3)) == (None if e < 2 else "batch-hard accuracy 50% "
                                                                   "reached 50%")  # fmt: skip
    assert not neighbors.calls and not sampler.warming_up and sampler.graph_epoch(4)
    assert len(epoch(sampler, 3)) == 10 and len(neighbors.calls) == 1
