"""The random streams: a key always gives the same numbers, another key others; `pick` follows its odds."""

from __future__ import annotations

import numpy as np

from qaconv.data.synthetic.streams import pick, stream


def test_a_key_gives_the_same_numbers():
    assert np.array_equal(stream(0, 1, 4, 7).random(5), stream(0, 1, 4, 7).random(5))
    assert not np.array_equal(stream(0, 1, 4, 7).random(5), stream(0, 1, 4, 8).random(5))
    assert not np.array_equal(stream(0, 1, 4, 7).random(5), stream(0, 2, 4, 7).random(5))


def test_pick_follows_the_odds():
    rng = np.random.default_rng(0)
    draws = [pick(rng, {"a": 3.0, "never": 0.0, "b": 1.0}) for _ in range(2000)]
    assert "never" not in draws
    assert 0.7 < draws.count("a") / len(draws) < 0.8
