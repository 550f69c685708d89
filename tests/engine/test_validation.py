"""Validation during training: held-out identities drawn once, Rank-1 / mAP on schedule, best.pt by mAP."""

import json
from types import SimpleNamespace

import pytest

from qaconv.engine.assemble import build_trainer
from qaconv.engine.checkpoint import read_checkpoint
from qaconv.engine.validation import hold_out_identities
from qaconv.errors import QAConvError
from tests.engine.conftest import learning_config, tiny_config


def records(cameras_per_pid):
    """One record per (pid, camera) entry of {pid: [camera, ...]}."""
    return [SimpleNamespace(path=f"{pid}_{i}.jpg", pid=pid, camid=cam, time=0.0)
            for pid, cams in cameras_per_pid.items() for i, cam in enumerate(cams)]  # fmt: skip


def test_held_out_identities_are_drawn_by_the_seed_and_each_query_has_a_match_from_another_camera():
    data = records({pid: [0, 0, 1] if pid % 2 else [1, 0] for pid in range(20)})
    train, held = hold_out_identities(data, 0.25, seed=3)
    held_pids = {r.pid for r in held.query + held.gallery}
    assert len(held_pids) == 5 and not held_pids & {r.pid for r in train}
    assert len(train) + len(held.query) + len(held.gallery) == len(data)
    assert len(held.query) == 5 and {r.pid for r in held.query} == held_pids
    for q in held.query:
        assert any(g.pid == q.pid and g.camid != q.camid for g in held.gallery)
    again, held_again = hold_out_identities(data, 0.25, seed=3)
    assert again == train and held_again.query == held.query
    assert {r.pid for r in hold_out_identities(data, 0.25, seed=4)[1].query} != held_pids


def test_an_identity_seen_by_one_camera_is_a_gallery_distractor_and_no_query_at_all_is_refused():
    data = records({pid: [0, 1] if pid < 5 else [1, 1] for pid in range(10)})
    _, held = hold_out_identities(data, 0.5, seed=0)
    held_pids = {r.pid for r in held.gallery}
    assert len(held_pids) == 5 and {r.pid for r in held.query} == {pid for pid in held_pids if pid < 5}
    assert all(pid in held_pids for pid in {r.pid for r in held.query})
    with pytest.raises(QAConvError, match="no held-out identity has images from two cameras"):
        hold_out_identities(records({pid: [0, 0] for pid in range(6)}), 0.5, seed=0)
    with pytest.raises(QAConvError, match=r"--val-share 0.5 leaves 1 of 3 training identities"):
        hold_out_identities(records({pid: [0, 1] for pid in range(3)}), 0.5, seed=0)


def test_validation_runs_on_its_schedule_at_the_last_epoch_and_at_the_switch(easy_set, tmp_path):
    config = learning_config(easy_set, val_share=0.25, val_every=4, max_epochs=5, step_factor=5, gs_warmup="auto",
                             gs_warmup_accuracy=0.99, gs_warmup_share=0.4)  # fmt: skip
    trainer = build_trainer(config, tmp_path / "run", quiet=True)
    assert trainer.sampler.num_classes == 12  # 4 of the 16 identities are held out
    history = trainer.fit()
    assert [h["epoch"] for h in history if "val" in h] == [2, 4, 5]  # the switch, the schedule, the end
    for h in history:
        if "val" in h:
            scores = h["val"]["held-out"]
            assert 0 <= scores["mAP"] <= 1 and 0 <= scores["rank1"] <= 1 and h["val_mAP"] == scores["mAP"]
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [("val" in h) for h in logged] == [False, True, False, True, True]


def test_best_pt_is_the_epoch_of_the_highest_validation_map(synth, tmp_path, monkeypatch):
    config = tiny_config(synth, val_sets=[str(synth / "B")], max_epochs=4, step_factor=4)
    trainer = build_trainer(config, tmp_path / "run", quiet=True)
    scripted = iter([0.2, 0.5, 0.3, 0.5])
    monkeypatch.setattr(type(trainer.validator), "__call__",
                        lambda self, model, matcher: {"val": {"B": {"rank1": 0.0, "mAP": (m := next(scripted))}},
                                                      "val_mAP": m})  # fmt: skip
    history = trainer.fit()
    assert [h["best"] for h in history] == [True, True, False, True]  # ties go to the later epoch
    assert read_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 4
    assert trainer.best_val_map == 0.5
