"""Flags generated from the config tree: names, types, and only given flags override."""

import argparse

import pytest

from qaconv.config import TRAIN_FLAGS, TrainConfig, add_flags, flag_names, given


def parser():
    p = argparse.ArgumentParser()
    add_flags(p, TrainConfig, flag_names(TrainConfig, TRAIN_FLAGS))
    return p


def test_every_option_has_one_flag_named_like_its_key():
    names = flag_names(TrainConfig, TRAIN_FLAGS)
    assert names["optimization.lr"] == "lr" and names["evaluation.batch_size"] == "eval_batch"
    assert names["sampler.name"] == "sampler" and names["sampler.batch_size"] == "batch_size"
    assert len(set(names.values())) == len(names)  # one flag, one option


def test_only_given_flags_are_returned_typed():
    args = parser().parse_args(["--lr", "0.01", "--no-freeze-bn", "--testsets", "a,b", "--batch-size", "16"])
    assert given(args) == {
        "optimization.lr": 0.01,
        "optimization.freeze_bn": False,
        "evaluation.testsets": ["a", "b"],
        "sampler.batch_size": 16,
    }
    assert given(parser().parse_args([])) == {}


def test_a_value_of_the_wrong_type_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["--batch-size", "eight"])
    assert "--batch-size" in capsys.readouterr().err


def test_a_former_flag_name_still_sets_its_option():
    assert given(parser().parse_args(["--gs-warmup-epochs", "3"])) == {"sampler.gs_warmup": "3"}
    assert given(parser().parse_args(["--gs-warmup", "auto"])) == {"sampler.gs_warmup": "auto"}
