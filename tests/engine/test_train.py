import json

import pytest
import torch
import yaml

from qaconv.cli import main
from qaconv.commands.train import prepare_run_dir
from qaconv.config import TrainConfig, config_from_dict, load_config, save_config
from qaconv.engine.checkpoint import read_checkpoint
from qaconv.engine.train import Trainer
from qaconv.errors import QAConvError
from tests.engine.conftest import tiny_config


def first_batch(trainer):
    """The images and labels of the sampler's first batch, augmented as in training."""
    batch = next(iter(trainer.sampler))
    dataset = trainer.loader.dataset
    images = torch.stack([dataset[i][0] for i in batch])
    return images, torch.tensor([dataset.records[i].pid for i in batch])


def test_steps_on_one_batch_reduce_the_loss(synth, tmp_path):
    trainer = Trainer.from_config(tiny_config(synth, freeze_bn=False), tmp_path / "run", quiet=True)
    images, labels = first_batch(trainer)
    losses = [trainer._step(images, labels)[0] for _ in range(8)]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("options", [{}, {"gs_warmup_epochs": 2, "warmup_loss": "pairwise"}])
def test_resume_after_interruption_equals_a_straight_run(synth, tmp_path, monkeypatch, options):
    straight = Trainer.from_config(tiny_config(synth, **options), tmp_path / "straight", quiet=True)
    straight.fit()

    original = Trainer.train_epoch

    def interrupt_at_third(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", interrupt_at_third)
    with pytest.raises(KeyboardInterrupt):
        Trainer.from_config(tiny_config(synth, **options), tmp_path / "resumed", quiet=True).fit()
    assert read_checkpoint(tmp_path / "resumed")["epoch"] == 2  # the last finished epoch survived
    monkeypatch.setattr(Trainer, "train_epoch", original)
    resumed = Trainer.from_config(tiny_config(synth, **options), tmp_path / "resumed", resume=True, quiet=True)
    resumed.fit()

    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    warmup = ["pairwise"] * 2 if options else []
    assert [h["loss_name"] for h in resumed.history] == warmup + ["triplet"] * (3 - len(warmup))
    if warmup:  # best.pt compares the epochs of the final loss only, not the warm-up's lower pairwise values
        assert read_checkpoint(tmp_path / "straight" / "best.pt")["epoch"] == 3
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    for group_a, group_b in zip(straight.optimizer.param_groups, resumed.optimizer.param_groups, strict=True):
        assert group_a["lr"] == group_b["lr"]


def test_a_resumed_history_without_loss_names_keeps_its_best_loss(synth):
    trainer = Trainer.from_config(tiny_config(synth), None, callbacks=[])
    trainer.epoch, trainer.history, trainer.best_loss = 2, [{"epoch": 2, "loss": 0.5}], 0.5  # an older run's record
    trainer.fit()
    assert trainer.history[-1]["epoch"] == 3 and trainer.history[-1]["loss"] > 0.5 and trainer.best_loss == 0.5


def test_config_round_trip(tmp_path):
    config = config_from_dict(TrainConfig, {"testsets": ["market1501"], "lr": 0.1, "ibn": None})
    save_config(config, tmp_path / "c.yaml")
    assert load_config(TrainConfig, tmp_path / "c.yaml") == config
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["optimization"]["lr"] == 0.1
    (tmp_path / "bad.yaml").write_text("lr: 0.1\nlearning_rate: 2\n")
    with pytest.raises(QAConvError, match="unknown key.*learning_rate"):
        load_config(TrainConfig, tmp_path / "bad.yaml")


def test_run_folder_of_another_run_is_refused(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(QAConvError, match="already holds a run.*--resume"):
        prepare_run_dir(tmp_path, overwrite=False)
    prepare_run_dir(tmp_path, overwrite=True)
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--sampler", "random"], "--sampler must be one of gs, pk"),
        (["--loss", "arcface"], "--loss must be one of triplet, pairwise"),
        (["--dataset", "nosuch"], "unknown data set"),
        (["--amp", "fp16"], "--amp fp16 needs a CUDA device"),
        (["--batch-size", "7"], "must be a positive multiple of num_instances"),
    ],
)
def test_bad_train_options_give_one_line_errors(synth, tmp_path, capsys, flags, message):
    args = ["train", "--out", str(tmp_path / "r"), "--dataset", str(synth / "A"), "--pretrained", "none"]
    args += ["--arch", "resnet18", "--height", "32", "--width", "16", "--device", "cpu", "--testsets", ""]
    assert main(args + flags) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_trains_and_evaluates_the_unseen_style(synth, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "--out", str(run_dir), "--dataset", str(synth / "A"), "--testsets", str(synth / "B")]
    args += ["--arch", "resnet18", "--final-layer", "layer2", "--neck", "8", "--height", "32", "--width", "16"]
    args += ["--pretrained", "none", "--batch-size", "8", "--max-epochs", "1", "--max-iters-per-epoch", "2"]
    args += ["--workers", "0", "--device", "cpu"]
    assert main(args) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert "B" in results
    assert main(args) == 2  # the folder now holds a run
    assert "already holds a run" in capsys.readouterr().err


def test_batch_with_non_finite_loss_is_skipped_without_update(synth, tmp_path):
    trainer = Trainer.from_config(tiny_config(synth), tmp_path / "run", quiet=True)
    trainer.model.eval()  # as train_epoch sets it with the paper's frozen BN statistics
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    images = torch.full((8, 3, 32, 16), float("nan"))
    loss, _, skipped = trainer._step(images, torch.arange(8) // 2)
    assert skipped
    for key, value in trainer.model.state_dict().items():
        torch.testing.assert_close(value, before[key], equal_nan=True, msg=key)


def test_many_non_finite_batches_in_a_row_stop_with_a_clear_error(synth, tmp_path, monkeypatch):
    trainer = Trainer.from_config(tiny_config(synth, max_iters_per_epoch=0), tmp_path / "run", quiet=True)
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
    trainer = Trainer.from_config(
        tiny_config(synth, device=device, amp=amp, freeze_bn=False), tmp_path / "run", quiet=True
    )
    assert trainer.amp_dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[amp]
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    images, labels = first_batch(trainer)
    steps = [trainer._step(images, labels) for _ in range(8)]
    assert not any(skipped for _, _, skipped in steps)
    assert steps[-1][0] < steps[0][0]


@needs_cuda
def test_fp16_resume_on_cuda_restores_the_grad_scaler(synth, tmp_path):
    config = tiny_config(synth, device="cuda", amp="fp16", deterministic=True, max_epochs=2)
    straight = Trainer.from_config(config, tmp_path / "straight", quiet=True)
    straight.fit()
    first = Trainer.from_config(
        tiny_config(synth, device="cuda", amp="fp16", deterministic=True, max_epochs=1),
        tmp_path / "resumed",
        quiet=True,
    )
    first.fit()
    resumed = Trainer.from_config(config, tmp_path / "resumed", resume=True, quiet=True)
    assert resumed.scaler.get_scale() == first.scaler.get_scale()
    resumed.fit()
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in straight.history], rel=1e-5)
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=1e-4, atol=1e-5, msg=name)
