"""Default data-loading processes: 4, never more than the CPUs (audit ev5: torch warned about 4 workers on 2 CPUs)."""

import pytest

from qaconv import cpus
from qaconv.cli import build_parser
from qaconv.config import ComputeConfig, EvaluateConfig, TrainConfig


@pytest.mark.parametrize(("cpu_count", "expected"), [(1, 1), (2, 2), (64, 4)])
def test_train_and_evaluate_default_to_at_most_the_cpus(monkeypatch, cpu_count, expected):
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(cpu_count)), raising=False)
    assert cpus.usable_cpus() == cpu_count
    assert TrainConfig().run.workers == expected
    assert EvaluateConfig().run.workers == expected
    assert EvaluateConfig(run=ComputeConfig(workers=8)).run.workers == 8  # an explicit choice is kept


def test_the_help_states_the_rule_not_this_machines_count(monkeypatch):
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    (workers,) = [a for a in train._actions if "--workers" in a.option_strings]
    assert workers.help.endswith("(default: 4, at most the CPUs)")
