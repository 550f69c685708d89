"""Shared by the sampler tests: labels, a neighbour-table stand-in and helpers that read batches back."""

import warnings

import numpy as np
import torch

from qaconv.data.samplers import GraphSampler, PKSampler


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
