import json

import pytest
import torch

from qaconv.config import TrainConfig, config_from_dict, read_yaml
from qaconv.engine.assemble import build_trainer
from qaconv.engine.checkpoint import read_checkpoint
from qaconv.engine.train import Trainer
from qaconv.errors import QAConvError
from tests.engine.conftest import learning_config, tiny_config


def load(path):
    """A config file read as qaconv train reads one (nested or flat), validated."""
    return config_from_dict(TrainConfig, read_yaml(path), str(path))


def first_batch(trainer):
    """The images and labels of the sampler's first batch, augmented as in training."""
    batch = next(iter(trainer.sampler))
    dataset = trainer.loader.dataset
    images = torch.stack([dataset[i][0] for i in batch])
    return images, torch.tensor([dataset.records[i].pid for i in batch])


def test_steps_on_one_batch_reduce_the_loss(synth, tmp_path):
    trainer = build_trainer(tiny_config(synth, freeze_bn=False), tmp_path / "run", quiet=True)
    images, labels = first_batch(trainer)
    losses = [trainer._step(images, labels)[0] for _ in range(8)]
    assert losses[-1] < losses[0]


AUTO_AT_ONE = {"gs_warmup": "auto", "gs_warmup_accuracy": 0.99, "gs_warmup_share": 0.34, "warmup_loss": "pairwise"}


@pytest.mark.parametrize(
    ("options", "warmup_epochs"),
    [({}, 0), ({"gs_warmup_epochs": 2, "warmup_loss": "pairwise"}, 2), (AUTO_AT_ONE, 1)],
)
def test_resume_after_interruption_equals_a_straight_run(synth, tmp_path, monkeypatch, options, warmup_epochs):
    straight = build_trainer(tiny_config(synth, **options), tmp_path / "straight", quiet=True)
    straight.fit()

    original = Trainer.train_epoch

    def interrupt_at_third(self, epoch, max_batches=None):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, epoch, max_batches)

    monkeypatch.setattr(Trainer, "train_epoch", interrupt_at_third)
    with pytest.raises(KeyboardInterrupt):
        build_trainer(tiny_config(synth, **options), tmp_path / "resumed", quiet=True).fit()
    assert read_checkpoint(tmp_path / "resumed")["epoch"] == 2  # the last finished epoch survived
    monkeypatch.setattr(Trainer, "train_epoch", original)
    resumed = build_trainer(tiny_config(synth, **options), tmp_path / "resumed", resume=True, quiet=True)
    resumed.fit()

    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    warmup = ["pairwise"] * warmup_epochs
    assert [h["loss_name"] for h in resumed.history] == warmup + ["triplet"] * (3 - len(warmup))
    assert resumed.sampler.warmup.epochs == warmup_epochs  # an automatic switch made before the interruption holds
    if warmup:  # best.pt compares the epochs of the final loss only, not the warm-up's lower pairwise values
        assert read_checkpoint(tmp_path / "straight" / "best.pt")["epoch"] == 3
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    for group_a, group_b in zip(straight.optimizer.param_groups, resumed.optimizer.param_groups, strict=True):
        assert group_a["lr"] == group_b["lr"]


def test_an_automatic_warmup_switches_to_graph_sampling_when_the_accuracy_passes_its_threshold(
    easy_set, tmp_path, capsys
):
    config = learning_config(easy_set, gs_warmup="auto", gs_warmup_accuracy=0.5, max_epochs=16, step_factor=16)
    trainer = build_trainer(config, tmp_path / "run")
    history = trainer.fit()
    switched = [h for h in history if "warmup_ended" in h]
    assert len(switched) == 1
    epoch = switched[0]["epoch"]
    assert epoch < 8  # it learned: the threshold came before the bound of half the 16 epochs
    assert history[epoch - 1]["acc"] >= 0.5 and all(h["acc"] < 0.5 for h in history[: epoch - 1])
    assert (
        switched[0]["warmup_ended"].startswith("batch-hard accuracy")
        and switched[0]["graph_sampling_from"] == epoch + 1
    )
    assert [h["sampling"] for h in history] == ["pk"] * epoch + ["graph"] * (16 - epoch)
    assert [h["loss_name"] for h in history] == ["pairwise"] * epoch + ["triplet"] * (16 - epoch)
    assert trainer.schedule.reference_epoch == epoch + 2  # the adaptive rule's reference: graph sampling's second
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert logged[epoch - 1]["warmup_ended"] == switched[0]["warmup_ended"]
    out = capsys.readouterr().out
    assert f"graph sampling starts at epoch {epoch + 1}: the P x K warm-up ended after epoch {epoch}" in out


def test_an_automatic_warmup_that_does_not_reach_its_threshold_ends_at_its_share_of_the_budget(synth):
    config = tiny_config(synth, gs_warmup="auto", gs_warmup_accuracy=0.99, gs_warmup_share=0.5, max_epochs=6,
                         step_factor=6, warmup_loss="pairwise")  # fmt: skip
    history = build_trainer(config, None, quiet=True).fit()
    assert [h["sampling"] for h in history] == ["pk"] * 3 + ["graph"] * 3
    assert history[2]["warmup_ended"].startswith("at its bound of 3 epochs")


def test_a_run_that_ends_in_its_automatic_warmup_says_so_and_a_longer_resume_goes_on_with_it(synth, tmp_path, capsys):
    options = {"gs_warmup": "auto", "gs_warmup_accuracy": 0.99, "gs_warmup_share": 1.0, "step_factor": 3,
               "warmup_loss": "pairwise"}  # fmt: skip
    history = build_trainer(tiny_config(synth, max_epochs=2, **options), tmp_path / "run").fit()
    assert [h["sampling"] for h in history] == ["pk", "pk"]
    assert not any("warmup_ended" in h for h in history)
    assert history[-1]["warmup_unfinished"].endswith("below 99%")  # in metrics.jsonl too
    assert "graph sampling did not start: the run ended in its P x K warm-up (batch-hard accuracy" in (
        capsys.readouterr().out
    )
    resumed = build_trainer(tiny_config(synth, max_epochs=3, **options), tmp_path / "run", resume=True, quiet=True)
    assert not resumed.sampler.warmup.decided
    assert [h["sampling"] for h in resumed.fit()][-1] == "pk"  # still warming up: 99% is out of reach


def test_a_resumed_history_without_loss_names_keeps_its_best_loss(synth):
    trainer = build_trainer(tiny_config(synth), None, callbacks=[])
    trainer.epoch, trainer.history, trainer.best_loss = 2, [{"epoch": 2, "loss": 0.5}], 0.5  # an older run's record
    trainer.fit()
    assert trainer.history[-1]["epoch"] == 3 and trainer.history[-1]["loss"] > 0.5 and trainer.best_loss == 0.5


def test_batch_with_non_finite_loss_is_skipped_without_update(synth, tmp_path):
    trainer = build_trainer(tiny_config(synth), tmp_path / "run", quiet=True)
    trainer.model.eval()  # as train_epoch sets it with the paper's frozen BN statistics
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    images = torch.full((8, 3, 32, 16), float("nan"))
    loss, _, skipped = trainer._step(images, torch.arange(8) // 2)
    assert skipped
    for key, value in trainer.model.state_dict().items():
        torch.testing.assert_close(value, before[key], equal_nan=True, msg=key)


def test_many_non_finite_batches_in_a_row_stop_with_a_clear_error(synth, tmp_path, monkeypatch):
    trainer = build_trainer(tiny_config(synth, max_iters_per_epoch=0), tmp_path / "run", quiet=True)
    trainer.guard.max_skipped = 2
    monkeypatch.setattr(trainer, "_step", lambda *args: (float("nan"), 0.0, True))
    with pytest.raises(QAConvError, match="not finite for 2 batches in a row"):
        trainer.train_epoch(1)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize(
    ("device", "amp"),
    [
        ("cpu", "bf16"),
        pytest.param("cuda", "fp16", marks=needs_cuda),
        pytest.param("cuda", "bf16", marks=needs_cuda),
    ],
)
def test_amp_steps_reduce_the_loss(synth, tmp_path, device, amp):
    trainer = build_trainer(tiny_config(synth, device=device, amp=amp, freeze_bn=False), tmp_path / "run", quiet=True)
    assert trainer.amp_dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[amp]
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    images, labels = first_batch(trainer)
    steps = [trainer._step(images, labels) for _ in range(8)]
    assert not any(skipped for _, _, skipped in steps)
    assert steps[-1][0] < steps[0][0]


@needs_cuda
def test_fp16_resume_on_cuda_restores_the_grad_scaler(synth, tmp_path):
    config = tiny_config(synth, device="cuda", amp="fp16", deterministic=True, max_epochs=2)
    straight = build_trainer(config, tmp_path / "straight", quiet=True)
    straight.fit()
    first = build_trainer(
        tiny_config(synth, device="cuda", amp="fp16", deterministic=True, max_epochs=1),
        tmp_path / "resumed",
        quiet=True,
    )
    first.fit()
    resumed = build_trainer(config, tmp_path / "resumed", resume=True, quiet=True)
    assert resumed.scaler.get_scale() == first.scaler.get_scale()
    resumed.fit()
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in straight.history], rel=1e-5)
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=1e-4, atol=1e-5, msg=name)
