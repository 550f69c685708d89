import pytest

from qaconv.engine.schedule import AdaptiveSchedule
from qaconv.errors import QAConvError


def run(schedule, losses):
    """Feed scripted epoch losses; return (epochs that decayed, last epoch trained)."""
    decays = []
    for epoch, loss in enumerate(losses, start=1):
        if schedule.end_epoch(epoch, loss):
            decays.append(epoch)
        if schedule.finished(epoch):
            return decays, epoch
    return decays, None


def test_adaptive_decays_once_below_factor_of_epoch_two_and_stops_half_later():
    # reference = 8 (epoch 2); 0.7 x 8 = 5.6; epoch 4's 5.5 triggers; stop at 4 + 4 // 2 = 6.
    decays, last = run(AdaptiveSchedule(0.7, 60), [10, 8, 7, 5.5, 5, 4, 3, 2])
    assert decays == [4]
    assert last == 6


def test_adaptive_epoch_one_never_counts_and_cap_applies():
    # epoch 1's low loss is before the reference exists; decay at 7 would stop at 10, capped to 9.
    decays, last = run(AdaptiveSchedule(0.7, 9), [1, 10, 9, 9, 9, 9, 6, 5, 5, 5])
    assert decays == [7]
    assert last == 9


def test_adaptive_without_progress_runs_max_epochs():
    decays, last = run(AdaptiveSchedule(0.7, 5), [10] * 8)
    assert decays == []
    assert last == 5


def test_fixed_schedule_steps_at_step_factor_and_runs_max_epochs():
    decays, last = run(AdaptiveSchedule(10, 15), [10.0] * 20)
    assert decays == [10]
    assert last == 15


def test_state_round_trip_keeps_the_decision():
    schedule = AdaptiveSchedule(0.7, 60)
    run(schedule, [10, 8, 7, 5.5])
    restored = AdaptiveSchedule()
    restored.load_state_dict(schedule.state_dict())
    assert restored == schedule
    assert not restored.end_epoch(5, 1.0)  # already decayed: never again (the published resume bug)


def test_a_new_cap_moves_an_end_set_by_the_cap_but_not_one_the_rule_chose():
    capped = AdaptiveSchedule(10, 3)
    run(capped, [10.0] * 3)
    capped.set_max_epochs(5)
    assert not capped.finished(3) and capped.finished(5)
    chosen = AdaptiveSchedule(0.7, 60)
    run(chosen, [10, 8, 7, 5.5, 5, 4])  # the rule ended it at epoch 6
    chosen.set_max_epochs(80)
    assert chosen.finished(6)


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"step_factor": 0}, "--step-factor"), ({"max_epochs": 0}, "--max-epochs")]
)
def test_bad_schedule_options(kwargs, message):
    with pytest.raises(QAConvError, match=message):
        AdaptiveSchedule(**kwargs)
