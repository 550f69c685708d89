"""One validation pass over the tree: types, ranges and the rules that tie options together."""

import dataclasses
import re

import pytest

from qaconv.config import TrainConfig, leaves, validate
from qaconv.errors import QAConvError


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


def test_every_evaluation_option_is_a_flag_of_qaconv_evaluate_and_of_qaconv_train():
    from qaconv.cli import build_parser
    from qaconv.config import EvaluationConfig, given

    args = build_parser().parse_args(["evaluate", "--checkpoint", "c", "--testset", "t", "--k1", "7", "--k2", "3",
                                      "--lambda-value", "0.5", "--K", "5", "--workers", "2"])  # fmt: skip
    assert given(args) == {"evaluation.testsets": ["t"], "evaluation.k1": 7, "evaluation.k2": 3,
                           "evaluation.lambda_value": 0.5, "evaluation.K": 5, "run.workers": 2}  # fmt: skip
    train = given(build_parser().parse_args(["train", "--k1", "9", "--save-scores", "--eval-batch", "8"]))
    assert train == {"evaluation.k1": 9, "evaluation.save_scores": True, "evaluation.batch_size": 8}
    assert {f.name for f in dataclasses.fields(EvaluationConfig)} >= {"k1", "tau", "cache_dir", "report"}


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
