"""Every class's shuffled image list and persistent cursor, drawn from as the published sampler does."""

import numpy as np
import pytest

from qaconv.data.samplers.class_lists import ClassLists
from qaconv.errors import QAConvError
from tests.data.samplers.conftest import chunk_classes, epoch, graph_sampler, make_labels


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


def test_take_continues_each_class_at_its_cursor_and_reshuffles_when_its_list_ends():
    labels = np.array([0, 0, 0, 1, 1, 2])
    lists = ClassLists(labels, seed=0)
    first = lists.lists.copy()  # class 0 at [0:3], class 1 at [3:5], class 2 at [5]
    images = lists.take(np.array([0, 1, 0]), 2, np.random.default_rng(1))
    assert images.shape == (3, 2)
    assert images[0].tolist() == first[0:2].tolist()  # entries in order: class 0's first two
    assert images[1].tolist() == first[3:5].tolist()
    assert images[2, 0] == first[2]  # then the last of its list, then the first of a fresh permutation
    assert sorted(lists.lists[0:3]) == [0, 1, 2] and lists.lists[0] == images[2, 1]
    assert lists.cursors.tolist() == [1, 0, 0]  # class 1 used its whole list: a fresh one at 0
    assert sorted(lists.lists[3:5]) == [3, 4] and lists.lists[5] == 5


def test_valid_state_needs_each_class_own_images_and_cursors_inside_its_list():
    lists = ClassLists(np.array([4, 4, 9, 9, 9]), seed=3)
    assert lists.valid_state(lists.lists, lists.cursors)
    swapped = lists.lists.copy()
    swapped[[0, 2]] = swapped[[2, 0]]  # an image of class 4 in the list of class 9
    assert not lists.valid_state(swapped, lists.cursors)
    assert not lists.valid_state(lists.lists, np.array([2, 0]))  # class 4 has 2 images
    assert not lists.valid_state(lists.lists[:-1], lists.cursors)


def test_random_members_are_one_image_of_each_class_in_sorted_label_order():
    labels = np.array([7, 3, 7, 3, 3, 5])
    lists = ClassLists(labels, seed=0)
    rng = np.random.default_rng(0)
    draws = np.array([lists.random_members(rng) for _ in range(200)])
    assert (labels[draws] == [3, 5, 7]).all()
    assert set(draws[:, 0]) == {1, 3, 4} and set(draws[:, 2]) == {0, 2}  # every image can be drawn


def test_the_digest_and_the_first_lists_depend_on_the_labels_and_the_seed():
    labels = np.repeat(np.arange(3), 8)
    a, b = ClassLists(labels, seed=0), ClassLists(labels, seed=1)
    assert a.digest == b.digest and not np.array_equal(a.lists, b.lists)
    np.testing.assert_array_equal(ClassLists(labels, seed=0).lists, a.lists)
    assert ClassLists(labels[::-1], seed=0).digest != a.digest


def test_labels_must_be_one_per_sample_and_not_empty():
    with pytest.raises(QAConvError, match="1-D"):
        ClassLists(np.zeros((2, 2)), seed=0)
    with pytest.raises(QAConvError, match="empty"):
        ClassLists([], seed=0)
