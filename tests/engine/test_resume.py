"""The options a resumed run compares: a run that records none is taken as it is. The options changed on resume
through `qaconv train --resume` are tested in tests/commands/test_train.py."""

import torch


def test_the_options_of_a_run_that_records_none_are_taken_as_they_are(stopped_run):
    payload = torch.load(stopped_run / "checkpoint.pt", weights_only=False)
    from qaconv.engine.resume import option_changes

    assert option_changes(None, None) == {}
    assert option_changes({"lr": "fast"}, None) == {}  # options that no longer read: nothing to compare
    assert payload["config"]["optimization"]["lr"] == 0.01  # the scratch recipe's
