"""SynthConfig: every option is checked when the config is made, before any file is touched."""

from __future__ import annotations

import numpy as np
import pytest

from qaconv.data.synthetic import SynthConfig, generate
from qaconv.errors import QAConvError
from tests.data.synthetic.conftest import SMALL


def test_options_are_checked(tmp_path):
    for bad in (
        {"style": "C"},
        {"num_cams": 10},
        {"num_cams": 1},
        {"num_ids": 1},
        {"images_per_id": 3},
        {"height": 16},
        {"quality": 0},
        {"junk_fraction": 2.0},
    ):
        with pytest.raises(QAConvError):
            generate(tmp_path / "x", SynthConfig(**{**SMALL, **bad}))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"seed": -1}, "seed must be at least 0, got -1"),
        ({"num_ids": 12.5}, "num_ids: expected an integer, got 12.5"),
        ({"width": True}, "width: expected an integer, got True"),
        ({"distractor_fraction": float("nan")}, "distractor_fraction must be a finite number, got nan"),
        ({"junk_fraction": "lots"}, "junk_fraction: expected a number, got 'lots'"),
        ({"num_cams": 12}, "num_cams must be at most 9, got 12"),
    ],
)
def test_each_error_names_the_option(bad, message):
    with pytest.raises(QAConvError, match=message):
        SynthConfig(**bad)


def test_values_are_normalised():
    config = SynthConfig(style="b", num_ids=np.int64(40), seed=np.uint8(3), junk_fraction=0)
    assert (config.style, config.num_ids, config.seed) == ("B", 40, 3)
    assert type(config.num_ids) is int and type(config.seed) is int
    assert config.junk_fraction == 0 and type(config.junk_fraction) is float  # one type per option
    assert SynthConfig(junk_fraction="0.25").junk_fraction == 0.25  # as a YAML file or a flag gives it
