"""Coercion of config values to their field's type, and range checks, with one-line errors naming the option."""

import math

import pytest

from qaconv.config.options import Spec, check, coerce
from qaconv.errors import QAConvError


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("1e-3", float, 0.001),  # PyYAML reads 1e-3 (no dot) as a string
        (3, float, 3.0),
        ("8", int, 8),
        (8.0, int, 8),
        ("no", bool, False),
        ("Yes", bool, True),
        (0, bool, False),
        ("none", str | None, None),
        ("", str | None, None),
        ("data/sb", list[str], ["data/sb"]),
        ("a, b,", list[str], ["a", "b"]),
        (["a"], list[str], ["a"]),
    ],
)
def test_values_are_converted_to_the_fields_type(value, kind, expected):
    assert coerce(value, kind, "--x") == expected


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        ("fast", float, "--x: expected a number, got 'fast'"),
        ([0.1, 0.2], float, "--x: expected a number"),
        (8.5, int, "--x: expected an integer, got 8.5"),
        (True, int, "--x: expected an integer"),
        ("maybe", bool, "--x: expected true or false"),
        (None, int, "--x: a value is required"),
        (3, str, "--x: expected text, got 3"),
        ([1, 2], list[str], "--x: expected a list of names"),
    ],
)
def test_values_of_the_wrong_type_are_refused_by_name(value, kind, message):
    with pytest.raises(QAConvError, match=message.replace("(", r"\(").replace("[", r"\[")):
        coerce(value, kind, "--x")


@pytest.mark.parametrize(
    ("value", "spec", "message"),
    [
        (math.nan, Spec("h", above=0), "must be a finite number, got nan"),
        (0.0, Spec("h", above=0), "must be greater than 0, got 0"),
        (-1, Spec("h", low=0), "must be at least 0, got -1"),
        (2.0, Spec("h", high=1), "must be at most 1, got 2"),
        ("c", Spec("h", choices=("a", "b")), "must be one of a, b, got 'c'"),
    ],
)
def test_ranges_and_choices_are_checked(value, spec, message):
    with pytest.raises(QAConvError, match=message):
        check(value, spec, "--x")
    check(None, spec, "--x")  # an optional value left out passes
