"""EvalOptions: every out-of-range value is refused by its flag, by one validation method."""

import dataclasses

import pytest

from qaconv.cli import build_parser
from qaconv.engine.evaluate import EvalOptions
from qaconv.errors import QAConvError


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"prob_block": 0}, "--prob-block must be a positive integer"),
        ({"dtype": "fp8"}, "--dtype must be"),
        ({"rerank_dist": "cosine"}, "--rerank-dist must be one of"),
        ({"report": -1}, "--report must be >= 0"),
        ({"K": 1000, "tlift": True}, "--K must be at most 100"),
        ({"K": 0}, "--K must be a positive integer"),
        ({"alpha": -1, "tlift": True}, "--alpha must be >= 0"),
        ({"alpha": float("nan")}, "--alpha must be >= 0"),
        ({"tau": float("inf")}, "--tau and --sigma must be positive"),
        ({"sigma": 0}, "--tau and --sigma must be positive"),
        ({"lambda_value": 1.5}, "--lambda-value must be in"),
        ({"lambda_value": float("nan")}, "--lambda-value must be in"),
        ({"k1": 0}, "--k1 must be a positive integer"),
        ({"k2": -3}, "--k2 must be a positive integer"),
        ({"workers": -2}, "--workers must be >= 0"),
    ],
)
def test_options_out_of_range_are_refused_by_flag(bad, message):
    with pytest.raises(QAConvError, match=message):
        EvalOptions(**bad)
    options = EvalOptions()
    for name, value in bad.items():
        setattr(options, name, value)
    with pytest.raises(QAConvError, match=message):
        options.validate()  # the one check, also for options edited after construction


def test_every_option_is_a_flag_of_qaconv_evaluate():
    args = build_parser().parse_args(["evaluate", "--checkpoint", "c", "--testset", "t", "--k1", "7", "--k2", "3",
                                      "--lambda-value", "0.5", "--K", "5"])  # fmt: skip
    names = [f.name for f in dataclasses.fields(EvalOptions)]
    assert all(hasattr(args, name) for name in names)
    assert (args.k1, args.k2, args.lambda_value, args.K, args.workers) == (7, 3, 0.5, 5, None)
