"""The public base of class-structured batch samplers: epochs, argument checks, resume state, rank partition."""

import io
import warnings

import numpy as np
import pytest
import torch

from qaconv.data.samplers import ClassBatchSampler, GraphSampler, PKSampler, pk_table
from qaconv.errors import QAConvError
from tests.data.samplers.conftest import TableNeighbors, epoch, graph_sampler, make_labels, pk_sampler


def test_no_warning_when_every_class_has_k_images():
    labels = np.repeat(np.arange(6), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GraphSampler(labels, TableNeighbors(), batch_size=4, num_instances=2)
        PKSampler(labels, batch_size=4, num_instances=2)


def test_iterating_again_moves_on_to_the_next_epoch():
    labels = make_labels(num_classes=10)
    a = graph_sampler(labels, neighbors_fn=TableNeighbors(2), batch_size=4)
    b = graph_sampler(labels, neighbors_fn=TableNeighbors(2), batch_size=4)
    assert [epoch(a), epoch(a)] == [epoch(b, 0), epoch(b, 1)]
    assert a.epoch == b.epoch == 2


def test_graph_resume_from_state_dict_continues_identically(tmp_path):
    labels = make_labels(num_classes=16)
    table = TableNeighbors(3)
    fixed = table(torch.arange(16), 3)  # the same graph every epoch, so only the sampler state matters

    def neighbors(idx, k):
        return fixed

    full = graph_sampler(labels, neighbors_fn=neighbors, batch_size=8, seed=11)
    epochs = [epoch(full, e) for e in range(3)]

    first = graph_sampler(labels, neighbors_fn=neighbors, batch_size=8, seed=11)
    epoch(first, 0)
    epoch(first, 1)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    resumed = graph_sampler(labels, neighbors_fn=neighbors, batch_size=8, seed=0)
    resumed.load_state_dict(state)
    assert resumed.seed == 11 and resumed.epoch == 2
    assert epoch(resumed) == epochs[2]


def test_load_state_dict_rejects_other_labels_and_broken_state():
    labels = make_labels(num_classes=8)
    sampler = graph_sampler(labels, batch_size=4)
    for other_labels in (labels[:-1], labels[::-1]):
        other = graph_sampler(other_labels, batch_size=4)
        with pytest.raises(QAConvError, match="different set of labels"):
            other.load_state_dict(sampler.state_dict())
    state = sampler.state_dict()
    state["cursors"] = state["cursors"] + 100
    with pytest.raises(QAConvError, match="inconsistent"):
        sampler.load_state_dict(state)
    state = sampler.state_dict()
    state["lists"][[0, -1]] = state["lists"][[-1, 0]]  # an image moved to another class's list
    with pytest.raises(QAConvError, match="inconsistent"):
        sampler.load_state_dict(state)
    with pytest.raises(QAConvError, match="lacks"):
        sampler.load_state_dict({"seed": 0})


@pytest.mark.parametrize("world_size", [2, 3, 4])
@pytest.mark.parametrize("kind", ["graph", "pk"])
def test_rank_partition_covers_the_single_process_batches(kind, world_size):
    labels = make_labels(num_classes=13)
    build = graph_sampler if kind == "graph" else pk_sampler

    def make(rank, world):
        kwargs = {"neighbors_fn": TableNeighbors(4)} if kind == "graph" else {}
        return build(labels, batch_size=6, num_instances=2, seed=3, rank=rank, world_size=world, **kwargs)

    single = make(0, 1)
    full = epoch(single, 0)
    ranks = [make(r, world_size) for r in range(world_size)]
    parts = [epoch(s, 0) for s in ranks]
    expected = -(-len(full) // world_size)
    for sampler, part in zip(ranks, parts, strict=True):
        assert len(sampler) == len(part) == expected  # the same count on every rank
    padded = [full[i % len(full)] for i in range(expected * world_size)]
    for r, part in enumerate(parts):
        assert part == padded[r::world_size]  # whole batches i with i % world_size == rank, wrapped
    assert {tuple(b) for p in parts for b in p} == {tuple(b) for b in full}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 7, "num_instances": 2}, "multiple of num_instances"),
        ({"batch_size": 0}, "multiple of num_instances"),
        ({"num_instances": 0}, "at least 1"),
        ({"batch_size": 40, "num_instances": 2}, "needs 20 classes, but the labels have only 12"),
        ({"rank": 2, "world_size": 2}, "rank 2"),
        ({"seed": -1}, "seed"),
    ],
)
@pytest.mark.parametrize("kind", ["graph", "pk"])
def test_bad_arguments_raise_clear_errors(kind, kwargs, message):
    labels = make_labels(num_classes=12)
    with pytest.raises(QAConvError, match=message):
        if kind == "graph":
            graph_sampler(labels, **kwargs)
        else:
            pk_sampler(labels, **kwargs)


@pytest.mark.parametrize("kind", ["graph", "pk"])
def test_empty_labels_raise(kind):
    with pytest.raises(QAConvError, match="empty"):
        graph_sampler([], batch_size=4) if kind == "graph" else pk_sampler([], batch_size=4)


def test_more_argument_errors():
    labels = make_labels(num_classes=6)
    with pytest.raises(QAConvError, match="one label per dataset sample"):
        pk_sampler(np.zeros((3, 2)))
    with pytest.raises(QAConvError, match="neighbors_fn must be callable"):
        GraphSampler(labels, None, batch_size=4)
    with pytest.raises(QAConvError, match="epoch must be non-negative"):
        pk_sampler(labels, batch_size=4).set_epoch(-1)


def test_pk_table_walks_every_class_in_chunks_and_fills_the_last_from_the_start():
    table = pk_table(10, 4, np.random.default_rng(0))
    assert table.shape == (3, 4)
    walk = table.ravel()
    assert sorted(walk[:10]) == list(range(10))
    np.testing.assert_array_equal(walk[10:], walk[:2])  # the short last chunk repeats the walk's first classes
    assert all(len(set(row)) == 4 for row in table)
    assert pk_table(8, 4, np.random.default_rng(0)).shape == (2, 4)  # no filler when P divides C


class FixedClasses(ClassBatchSampler):
    """The smallest sampler on the public base: the same two batches of classes every epoch."""

    def num_batches(self):
        return 2

    def batch_classes(self, rng):
        return np.array([[0, 1], [2, 3]])


def test_a_subclass_names_the_classes_and_the_base_draws_k_images_of_each():
    labels = np.repeat([3, 5, 7, 9], 3)
    sampler = FixedClasses(labels, batch_size=4, num_instances=2)
    assert len(sampler) == 2 and sampler.num_classes == 4
    batches = epoch(sampler, 0)
    assert sorted(labels[b].tolist() for b in batches) == [[3, 3, 5, 5], [7, 7, 9, 9]]
    assert all(len(set(b)) == 4 for b in batches)  # 3 images per class: no repeat inside a batch
    for batch, classes in zip(batches, sampler.last_batch_classes, strict=True):
        np.testing.assert_array_equal(sampler.classes[classes], labels[batch][::2])  # in batch order


def test_the_base_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        ClassBatchSampler(np.repeat(np.arange(4), 2), batch_size=4)
