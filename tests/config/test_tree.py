"""One validation pass over the tree: types, ranges and the rules that tie options together."""

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
