"""One validation pass over the tree: types, ranges and the rules that tie options together; SynthConfig checks
every option when the config is made, before any file is touched."""

import dataclasses
import re

import numpy as np
import pytest

from qaconv.config import SynthConfig, TrainConfig, leaves, validate
from qaconv.data.synthetic import generate
from qaconv.errors import QAConvError
from tests.data.synthetic.conftest import SMALL


def test_defaults_are_the_papers_and_valid():
    config = validate(TrainConfig())
    assert (config.model.arch, config.model.ibn, config.model.neck) == ("resnet50", "b", 128)
    assert (config.sampler.batch_size, config.sampler.num_instances) == (64, 2)
    assert (config.optimization.lr, config.optimization.margin, config.schedule.step_factor) == (0.005, 16.0, 0.7)


def test_every_option_has_help():
    for path, field, _ in leaves(TrainConfig):
        assert field.metadata["spec"].help, path


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("sampler", "batch_size"), 9, "must be a positive multiple of num_instances"),
        (("sampler", "batch_size"), 2, "holds one class, so no negatives"),
        (("data", "min_size"), 0.9, "must be below --max-size"),
        (("run", "seed"), -1, "must be at least 0"),
        (("optimization", "amp"), "fp8", "must be one of auto, off, fp16, bf16"),
    ],
)
def test_invalid_trees_are_refused(path, value, message):
    config = TrainConfig()
    setattr(getattr(config, path[0]), path[1], value)
    with pytest.raises(QAConvError, match=message):
        validate(config)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"prob_block": 0}, "--prob-block must be at least 1, got 0"),
        ({"dtype": "fp8"}, "--dtype must be one of auto, float32, bfloat16, float16"),
        ({"rerank_dist": "cosine"}, "--rerank-dist must be one of neg_score, sigmoid"),
        ({"report": -1}, "--report must be at least 0"),
        ({"K": 1000, "tlift": True}, "--K must be at most 100"),
        ({"K": 0}, "--K must be at least 1"),
        ({"alpha": -1, "tlift": True}, "--alpha must be at least 0"),
        ({"alpha": float("nan")}, "--alpha must be a finite number"),
        ({"tau": float("inf")}, "--tau must be a finite number"),
        ({"sigma": 0}, "--sigma must be greater than 0"),
        ({"lambda_value": 1.5}, "--lambda-value must be at most 1"),
        ({"lambda_value": float("nan")}, "--lambda-value must be a finite number"),
        ({"k1": 0}, "--k1 must be at least 1"),
        ({"k2": -3}, "--k2 must be at least 1"),
    ],
)
def test_evaluation_options_out_of_range_are_refused_by_their_flag(bad, message):
    from qaconv.config import EvaluationConfig, flag_names, namer

    with pytest.raises(QAConvError, match=re.escape(message)):
        validate(EvaluationConfig(**bad), namer(flag_names(EvaluationConfig)))


def test_the_choices_of_the_tree_are_the_names_the_registries_and_presets_hold():
    """The tree declares each choice list once for its flags, docs and checks; the parts are registered by name
    elsewhere (a loss, a sampler, a recipe, a synthetic style): the two must agree."""
    from qaconv.config import SynthConfig
    from qaconv.config.presets import RECIPES
    from qaconv.config.tree import RECIPE_NAMES, SYNTH_STYLES, spec_of
    from qaconv.data.samplers import SAMPLERS
    from qaconv.data.synthetic.styles import STYLES
    from qaconv.losses import LOSSES

    fields = {path: f for path, f, _ in leaves(TrainConfig)}
    assert set(spec_of(fields["optimization.loss"]).choices) == set(LOSSES)
    assert set(spec_of(fields["optimization.warmup_loss"]).choices) == {"same", *LOSSES}
    assert set(spec_of(fields["sampler.name"]).choices) == set(SAMPLERS)
    assert set(RECIPE_NAMES) == {"auto", *RECIPES}
    assert set(SYNTH_STYLES) == set(STYLES)
    assert spec_of(dataclasses.fields(SynthConfig)[3]).choices == SYNTH_STYLES


# ----------------------------------------------------------------------------------------------------- SynthConfig


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
