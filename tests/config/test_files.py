"""Config files: nested YAML, old flat files, duplicate keys, and errors that name the file and the key."""

import pytest
import yaml

from qaconv.config import TrainConfig, config_from_dict, read_yaml, save_config
from qaconv.errors import QAConvError


def load(path):
    """A config file read as qaconv train reads one (nested or flat), validated."""
    return config_from_dict(TrainConfig, read_yaml(path), str(path))


def test_nested_round_trip(tmp_path):
    config = config_from_dict(TrainConfig, {"optimization": {"lr": 0.1}, "model": {"ibn": None}})
    save_config(config, tmp_path / "c.yaml")
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["optimization"]["lr"] == 0.1
    assert load(tmp_path / "c.yaml") == config


def test_a_flat_file_of_an_older_run_still_loads(tmp_path):
    """Runs made before the config tree wrote one key per `qaconv train` flag."""
    (tmp_path / "old.yaml").write_text("dataset: data/sa\nlr: 0.01\neval_batch: 16\nsampler: pk\nfreeze_bn: false\n")
    config = load(tmp_path / "old.yaml")
    assert (config.data.dataset, config.optimization.lr, config.evaluation.batch_size) == ("data/sa", 0.01, 16)
    assert (config.sampler.name, config.optimization.freeze_bn) == ("pk", False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: 0.1\nlearning_rate: 2\n", "unknown key.*learning_rate; valid keys: .*optimization.lr"),
        ("optimization:\n  speed: 2\n", "unknown key.*optimization.speed"),
        ("lr: 0.1\nlr: 0.2\n", "not valid YAML.*'lr' is given twice"),
        ("lr: fast\n", "c.yaml: optimization.lr: expected a number, got 'fast'"),
        ("freeze_bn: sometimes\n", "c.yaml: optimization.freeze_bn: expected true or false"),
        ("- a\n- b\n", "expected a mapping"),
        ("lr: [\n", "not valid YAML"),
    ],
)
def test_bad_files_are_refused_naming_the_file_and_key(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(QAConvError, match=message):
        load(tmp_path / "c.yaml")


def test_missing_file_or_folder(tmp_path):
    with pytest.raises(QAConvError, match="config file not found: .*nope.yaml"):
        load(tmp_path / "nope.yaml")
    with pytest.raises(QAConvError, match=r"config file not found: .* \(it is a folder\)"):
        load(tmp_path)


def test_a_former_key_of_an_option_still_loads_flat_and_nested(tmp_path):
    (tmp_path / "flat.yaml").write_text("gs_warmup_epochs: 3\n")
    (tmp_path / "nested.yaml").write_text("sampler: {gs_warmup_epochs: 2}\n")
    assert load(tmp_path / "flat.yaml").sampler.gs_warmup == "3"
    assert load(tmp_path / "nested.yaml").sampler.warmup_epochs == 2


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), (4, "4"), ("0", "0")])
def test_a_warmup_is_auto_or_a_number_of_epochs(value, expected):
    assert config_from_dict(TrainConfig, {"gs_warmup": value}).sampler.gs_warmup == expected


@pytest.mark.parametrize("value", ["fast", -1, "2.5", True])
def test_a_warmup_that_is_neither_auto_nor_a_number_is_refused_by_name(value):
    with pytest.raises(QAConvError, match=r"config: sampler.gs_warmup"):
        config_from_dict(TrainConfig, {"gs_warmup": value})


def test_config_round_trip(tmp_path):
    config = config_from_dict(TrainConfig, {"testsets": ["market1501"], "lr": 0.1, "ibn": None})
    save_config(config, tmp_path / "c.yaml")
    assert load(tmp_path / "c.yaml") == config
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["optimization"]["lr"] == 0.1
    (tmp_path / "bad.yaml").write_text("lr: 0.1\nlearning_rate: 2\n")
    with pytest.raises(QAConvError, match="unknown key.*learning_rate"):
        load(tmp_path / "bad.yaml")
