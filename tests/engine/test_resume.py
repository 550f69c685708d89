"""A resumed run's records stay true: a changed option takes effect and is recorded, or is refused with the reason."""

import json

import pytest
import torch
import yaml

from qaconv.cli import main
from qaconv.engine.checkpoint import read_checkpoint
from tests.commands.test_train import one_line_error, train_args


@pytest.fixture
def stopped_run(synth, tmp_path):
    """A run that trained 2 of its epochs (a fixed schedule: the decay comes after epoch 4), then stopped."""
    out = tmp_path / "run"
    assert main(train_args(synth, out, "--testsets", "", "--step-factor", "4", "--max-epochs", "2")) == 0
    return out


def lines(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def resume(run, *extra):
    return main(["train", "--resume", str(run), "--max-epochs", "4", *extra])


def test_a_learning_rate_given_on_resume_trains_from_the_next_epoch_and_is_recorded(stopped_run, capsys):
    assert resume(stopped_run, "--lr", "0.05") == 0
    out = capsys.readouterr().out
    assert "resuming with changed options: --lr 0.05 (was 0.005), --max-epochs 4 (was 2)" in out
    history = lines(stopped_run)
    assert history[2]["changed"] == {
        "optimization.lr": {"before": 0.005, "after": 0.05},
        "schedule.max_epochs": {"before": 2, "after": 4},
    }
    assert "changed" not in history[3]
    assert history[2]["lr"] == pytest.approx([0.05] * 3)  # backbone (1x in the scratch recipe), neck, matcher
    assert history[3]["lr"] == pytest.approx([0.005] * 3)  # the fixed schedule's decay after epoch 4
    assert yaml.safe_load((stopped_run / "config.yaml").read_text())["optimization"]["lr"] == 0.05
    assert read_checkpoint(stopped_run)["config"]["optimization"]["lr"] == 0.05


def test_a_learning_rate_edited_in_config_yaml_takes_effect_the_same_way(stopped_run, capsys):
    config = yaml.safe_load((stopped_run / "config.yaml").read_text())
    config["optimization"]["lr"] = 0.02
    config["optimization"]["weight_decay"] = 0.001
    (stopped_run / "config.yaml").write_text(yaml.safe_dump(config))
    assert resume(stopped_run) == 0
    assert set(lines(stopped_run)[2]["changed"]) == {
        "optimization.lr",
        "optimization.weight_decay",
        "schedule.max_epochs",
    }
    optimizer = read_checkpoint(stopped_run)["optimizer"]
    assert [g["weight_decay"] for g in optimizer["param_groups"]] == [0.001] * 3


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--seed", "5"], "--seed 5 differs from the run's 0, and the random state continues from the checkpoint"),
        (["--batch-size", "4"], "--batch-size 4 differs from the run's 8, and the batch sampler's state"),
        (["--loss", "pairwise"], "--loss pairwise differs from the run's triplet, and a different loss"),
        (["--margin", "8"], "--margin 8.0 differs from the run's 16.0"),
        (["--sampler", "pk"], "--sampler pk differs from the run's gs"),
        (["--pretrained", "imagenet"], "a resumed run's weights come from its checkpoint"),
        (["--recipe", "paper"], "a recipe is a set of options"),
        (["--neck", "16"], "--neck 16 differs from the run's 8, and a run's network cannot change"),
    ],
)
def test_a_change_that_cannot_take_effect_is_refused_with_the_reason_before_any_work(stopped_run, capsys, extra,
                                                                                      words):  # fmt: skip
    before = (stopped_run / "checkpoint.pt").read_bytes()
    one_line_error(capsys, resume(stopped_run, *extra), words)
    assert (stopped_run / "checkpoint.pt").read_bytes() == before and len(lines(stopped_run)) == 2


def test_the_step_cannot_move_once_the_rates_were_decayed(synth, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(synth, out, "--testsets", "", "--step-factor", "1", "--max-epochs", "2")) == 0
    one_line_error(capsys, resume(out, "--step-factor", "3"), "the learning rates were decayed already")
    assert resume(out, "--step-factor", "1") == 0  # the same value is no change


def test_the_warm_up_can_change_before_graph_sampling_starts_but_not_after(synth, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(synth, out, "--testsets", "", "--gs-warmup", "3", "--max-epochs", "1")) == 0
    assert main(["train", "--resume", str(out), "--max-epochs", "3", "--gs-warmup", "1"]) == 0
    assert [h["sampling"] for h in lines(out)] == ["pk", "graph", "graph"]
    one_line_error(capsys, main(["train", "--resume", str(out), "--max-epochs", "4", "--gs-warmup", "2"]),
                   "--gs-warmup 2 differs from the run's 1, and graph sampling has started already")  # fmt: skip


def test_the_options_of_a_run_that_records_none_are_taken_as_they_are(stopped_run):
    payload = torch.load(stopped_run / "checkpoint.pt", weights_only=False)
    from qaconv.engine.resume import option_changes

    assert option_changes(None, None) == {}
    assert option_changes({"lr": "fast"}, None) == {}  # options that no longer read: nothing to compare
    assert payload["config"]["optimization"]["lr"] == 0.005
