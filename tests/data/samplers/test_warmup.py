"""GraphWarmup: which epochs are P x K warm-up epochs, fixed or decided by the batch-hard accuracy."""

import pytest

from qaconv.data.samplers import GraphWarmup
from qaconv.errors import QAConvError


def test_a_fixed_warmup_covers_its_epochs_and_never_decides_again():
    warmup = GraphWarmup(epochs=2)
    assert [warmup.in_warmup(e) for e in (1, 2, 3)] == [True, True, False]
    assert warmup.end_epoch(1, accuracy=0.99) is None and warmup.epochs == 2
    assert not GraphWarmup(epochs=0).in_warmup(1)


def test_an_automatic_warmup_ends_after_the_first_epoch_whose_accuracy_reaches_the_threshold():
    warmup = GraphWarmup.auto(accuracy=0.5, max_epochs=10)
    assert warmup.in_warmup(1) and warmup.in_warmup(50) and not warmup.decided
    assert warmup.end_epoch(1, accuracy=0.2) is None and warmup.end_epoch(2, accuracy=0.49) is None
    assert warmup.end_epoch(3, accuracy=0.5) == "batch-hard accuracy 50% reached 50%"
    assert warmup.epochs == 3 and warmup.in_warmup(3) and not warmup.in_warmup(4)
    assert warmup.end_epoch(4, accuracy=0.9) is None and warmup.epochs == 3


def test_an_automatic_warmup_that_never_reaches_its_threshold_ends_at_its_bound():
    warmup = GraphWarmup.auto(accuracy=0.9, max_epochs=2)
    assert warmup.end_epoch(1, accuracy=0.1) is None
    assert warmup.end_epoch(2, accuracy=0.2) == "at its bound of 2 epochs, batch-hard accuracy 20%"
    assert warmup.epochs == 2


def test_the_switch_survives_a_state_round_trip_and_the_criterion_comes_from_the_options():
    made = GraphWarmup.auto(accuracy=0.3, max_epochs=5)
    made.end_epoch(1, accuracy=0.4)
    restored = GraphWarmup.auto(accuracy=0.9, max_epochs=8)
    restored.load_state_dict(made.state_dict())
    assert (restored.epochs, restored.reason, restored.accuracy, restored.max_epochs) == (1, made.reason, 0.9, 8)
    undecided = GraphWarmup.auto(accuracy=0.5, max_epochs=3)
    undecided.load_state_dict(GraphWarmup.auto(accuracy=0.5, max_epochs=3).state_dict())
    assert not undecided.decided


@pytest.mark.parametrize(("accuracy", "max_epochs"), [(0.0, 3), (1.5, 3), (0.5, 0)])
def test_an_automatic_warmup_without_a_sensible_threshold_or_bound_is_refused(accuracy, max_epochs):
    with pytest.raises(QAConvError, match="automatic warm-up: accuracy must be in"):
        GraphWarmup.auto(accuracy=accuracy, max_epochs=max_epochs)


def test_a_fixed_warmup_reports_its_end_once_so_the_switch_is_recorded():
    warmup = GraphWarmup(epochs=3)
    assert [warmup.end_epoch(e, 0.9) for e in (1, 2, 3, 4)] == [None, None, "after its 3 epochs", None]
    assert GraphWarmup(epochs=0).end_epoch(1, 0.9) is None  # graph sampling from the start: no switch
