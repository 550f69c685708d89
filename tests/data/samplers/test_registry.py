"""Batch samplers by their --sampler name."""

import numpy as np
import pytest

from qaconv.data.samplers import SAMPLERS, GraphSampler, PKSampler, build_sampler, register_sampler, registry
from qaconv.errors import QAConvError
from tests.data.samplers.conftest import TableNeighbors, epoch

OPTIONS = {"batch_size": 4, "num_instances": 2, "seed": 3, "rank": 0, "world_size": 1, "warmup": 2}


def test_both_samplers_are_registered_under_their_sampler_names():
    assert SAMPLERS["gs"] is GraphSampler and SAMPLERS["pk"] is PKSampler


def test_build_sampler_hands_each_sampler_the_options_it_takes():
    labels = np.repeat(np.arange(6), 2)
    neighbors = TableNeighbors()
    graph = build_sampler("gs", labels, neighbors, **OPTIONS)
    assert isinstance(graph, GraphSampler) and graph.neighbors_fn is neighbors
    assert (graph.warmup.epochs, graph.seed, graph.batch_size) == (2, 3, 4)
    pk = build_sampler("pk", labels, neighbors, **OPTIONS)  # neighbours and warm-up do not apply
    assert isinstance(pk, PKSampler)
    assert epoch(pk, 0) == epoch(PKSampler(labels, batch_size=4, num_instances=2, seed=3), 0)


def test_an_unknown_name_is_refused_with_the_registered_names():
    with pytest.raises(QAConvError, match="--sampler must be one of gs, pk, got 'random'"):
        build_sampler("random", [0, 1], None, **OPTIONS)


def test_a_registered_class_is_built_by_its_name(monkeypatch):
    monkeypatch.setattr(registry, "SAMPLERS", dict(SAMPLERS))

    @register_sampler("echo")
    class Echo:
        uses_graph = True

        def __init__(self, labels, neighbors_fn, **options):
            self.args = labels, neighbors_fn, options

    assert registry.SAMPLERS["echo"] is Echo and "echo" not in SAMPLERS and Echo.name == "echo"
    built = build_sampler("echo", [1, 2], "fn", batch_size=2)
    assert built.args == ([1, 2], "fn", {"warmup": 0, "batch_size": 2})
