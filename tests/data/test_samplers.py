import io
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from qaconv.data.samplers import GraphSampler, PKSampler, SeededBatches
from qaconv.errors import QAConvError


def make_labels(num_classes=12, seed=0, min_count=1, max_count=6):
    """Shuffled labels (non-contiguous pids) with 1..max_count images per class."""
    rng = np.random.default_rng(seed)
    pids = rng.choice(1000, num_classes, replace=False)
    labels = np.repeat(pids, rng.integers(min_count, max_count + 1, num_classes))
    return rng.permutation(labels)


class TableNeighbors:
    """A neighbors_fn returning a random valid table per call; records its calls."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.calls = []

    def __call__(self, sample_indices, k):
        num = len(sample_indices)
        self.calls.append((sample_indices.clone(), k))
        keys = self.rng.random((num, num))
        np.fill_diagonal(keys, np.inf)
        return torch.from_numpy(np.argsort(keys, axis=1)[:, :k])


def graph_sampler(labels, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GraphSampler(labels, kwargs.pop("neighbors_fn", TableNeighbors()), **kwargs)


def pk_sampler(labels, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PKSampler(labels, **kwargs)


def epoch(sampler, e=None):
    if e is not None:
        sampler.set_epoch(e)
    return [list(b) for b in sampler]


def class_positions(sampler, labels, batch):
    """Class position (index into the sorted distinct labels) of each image of a batch."""
    return np.searchsorted(sampler.classes, labels[batch])


def chunk_classes(sampler, labels, batch):
    """Class position of each K-chunk of a batch; asserts each chunk is one class."""
    k = sampler.num_instances
    pos = class_positions(sampler, labels, batch).reshape(-1, k)
    assert (pos == pos[:, :1]).all(), "a chunk of K images mixes classes"
    return pos[:, 0]


# ---------------------------------------------------------------- Graph Sampler


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


def consumption(sampler, labels, batches):
    """Per class, the images it gave in the order the published loop takes them (anchor by anchor)."""
    by_anchor = sorted(batches, key=lambda b: chunk_classes(sampler, labels, b)[-1])
    taken = {c: [] for c in range(sampler.num_classes)}
    k = sampler.num_instances
    for batch in by_anchor:
        for j, c in enumerate(chunk_classes(sampler, labels, batch)):
            taken[c].extend(batch[j * k : (j + 1) * k])
    return taken


@pytest.mark.parametrize("num_instances", [2, 3])
def test_images_come_from_a_cursor_over_reshuffled_lists(num_instances):
    """Like the published loop: the list in order from the cursor, then a fresh permutation at its end."""
    labels = make_labels(num_classes=14, max_count=5)
    sampler = graph_sampler(labels, batch_size=4 * num_instances, num_instances=num_instances)
    start = sampler.state_dict()
    stream = {c: [] for c in range(sampler.num_classes)}
    for e in range(4):
        for c, images in consumption(sampler, labels, epoch(sampler, e)).items():
            stream[c].extend(images)
    end = sampler.state_dict()
    for c, images in stream.items():
        members = np.flatnonzero(labels == sampler.classes[c])
        n = len(members)
        first = start["lists"].numpy()[np.flatnonzero(np.sort(labels) == sampler.classes[c])]
        assert images[:n] == first[: len(images[:n])].tolist()  # cursors start at 0 on the initial list
        for s in range(0, len(images) - n + 1, n):
            assert sorted(images[s : s + n]) == members.tolist()  # each pass is a permutation of the class
        assert int(end["cursors"][c]) == len(images) % n
        rest = len(images) % n
        current = end["lists"].numpy()[np.flatnonzero(np.sort(labels) == sampler.classes[c])]
        assert current[:rest].tolist() == images[len(images) - rest :]  # the list the cursor is in


def test_graph_single_image_class_repeats_and_warning_counts_short_classes():
    labels = np.array([0, 1, 1, 2, 2, 2, 3, 4, 4])
    with pytest.warns(UserWarning, match="2 of 5 classes have fewer than num_instances=2"):
        sampler = GraphSampler(labels, TableNeighbors(), batch_size=4, num_instances=2)
    for batch in epoch(sampler, 0):
        classes = chunk_classes(sampler, labels, batch)
        for j, c in enumerate(classes):
            if sampler.classes[c] in (0, 3):
                assert batch[2 * j] == batch[2 * j + 1]


def test_no_warning_when_every_class_has_k_images():
    labels = np.repeat(np.arange(6), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GraphSampler(labels, TableNeighbors(), batch_size=4, num_instances=2)
        PKSampler(labels, batch_size=4, num_instances=2)


def test_graph_deterministic_for_seed_and_epoch_and_different_across_epochs():
    labels = make_labels(num_classes=20)
    a = graph_sampler(labels, neighbors_fn=TableNeighbors(1), batch_size=8, seed=5)
    b = graph_sampler(labels, neighbors_fn=TableNeighbors(1), batch_size=8, seed=5)
    c = graph_sampler(labels, neighbors_fn=TableNeighbors(1), batch_size=8, seed=6)
    a0, a1 = epoch(a, 0), epoch(a, 1)
    assert epoch(b, 0) == a0 and epoch(b, 1) == a1
    assert a0 != a1
    assert epoch(c, 0) != a0


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


# ---------------------------------------------------------------- PK sampler


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


def test_graph_batches_by_hand_for_single_image_classes():
    labels = np.array([40, 10, 30, 20])  # class positions: 10 -> 0 (index 1), 20 -> 1 (3), 30 -> 2 (2), 40 -> 3 (0)
    with pytest.warns(UserWarning, match="4 of 4 classes"):
        sampler = GraphSampler(labels, lambda idx, k: torch.tensor([[1], [0], [3], [2]]), batch_size=4)
    assert sorted(epoch(sampler, 0)) == [[0, 0, 2, 2], [1, 1, 3, 3], [2, 2, 0, 0], [3, 3, 1, 1]]


def test_pk_batches_by_hand_when_every_class_has_k_images():
    labels = np.repeat([5, 7, 9, 11, 13, 15], 2)
    sampler = pk_sampler(labels, batch_size=4, num_instances=2)
    for e in range(3):
        batches = epoch(sampler, e)
        assert sorted(i for b in batches for i in b) == list(range(12))  # each class once, both its images
        for batch in batches:
            assert sorted(batch[:2]) in ([0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11])


def test_more_argument_errors():
    labels = make_labels(num_classes=6)
    with pytest.raises(QAConvError, match="one label per dataset sample"):
        pk_sampler(np.zeros((3, 2)))
    with pytest.raises(QAConvError, match="neighbors_fn must be callable"):
        GraphSampler(labels, None, batch_size=4)
    with pytest.raises(QAConvError, match="epoch must be non-negative"):
        pk_sampler(labels, batch_size=4).set_epoch(-1)


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
