"""What happens around the training loop: checkpoints, metrics.jsonl, TensorBoard, curves, console and progress."""

import dataclasses
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import qaconv.viz.curves
from qaconv.config import ModelConfig
from qaconv.engine import callbacks
from qaconv.engine.assemble import build_trainer
from qaconv.engine.callbacks import Checkpointer, ConsoleLog, CurvePlot, MetricsLog, Progress, TensorBoardLog
from qaconv.engine.checkpoint import load_model
from qaconv.rundir import RunDir
from tests.engine.conftest import tiny_config


def test_run_folder_records(synth, tmp_path):
    run_dir = tmp_path / "run"
    trainer = build_trainer(tiny_config(synth, max_epochs=2, step_factor=1), run_dir, quiet=True)
    history = trainer.fit()
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0]["decayed"] and not history[1]["decayed"]
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert math.isclose(lines[1]["lr"][-1], 0.001)
    assert (run_dir / "training_curves.png").stat().st_size > 0
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["sampler"]["batch_size"] == 8
    model, matcher, config = load_model(run_dir / "best.pt")
    assert (config.height, config.width, matcher.locations) == (32, 16, 8)


def test_tensorboard_scalars_are_written_when_tensorboard_is_installed(synth, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    build_trainer(tiny_config(synth, max_epochs=2, max_iters_per_epoch=1), run_dir, quiet=True).fit()
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/acc", "train/lr", "train/images_per_s"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]


def stats(epoch, loss, skipped=0):
    """An epoch's statistics as Trainer.fit hands them to the callbacks."""
    return {"epoch": epoch, "loss": loss, "acc": 0.5, "batches": 4, "skipped": skipped, "images_per_s": 100.0,
            "seconds": 1.0, "graph_seconds": 0.5, "decayed": False, "lr": [0.001, 0.01]}  # fmt: skip


def fake_trainer(history=()):
    """What the callbacks read of a Trainer, with stand-ins for the model and the matcher."""
    trainer = SimpleNamespace(history=list(history), epoch=len(history), model=torch.nn.Linear(2, 2))
    trainer.matcher = torch.nn.Linear(2, 1)
    trainer.best_loss = min((h["loss"] for h in history), default=float("inf"))
    trainer.state_dict = lambda: {"epoch": trainer.epoch, "best_loss": trainer.best_loss}
    return trainer


def finish_epoch(trainer, callback, loss, skipped=0):
    """As Trainer.fit ends an epoch: history and best loss first, then the callback."""
    trainer.epoch += 1
    record = stats(trainer.epoch, loss, skipped)
    record["best"] = loss <= trainer.best_loss
    trainer.history.append(record)
    trainer.best_loss = min(trainer.best_loss, loss)
    callback.on_epoch_end(trainer, record)


def test_checkpointer_saves_the_config_then_best_before_checkpoint_and_best_only_when_best(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    written = []
    save = callbacks.save_checkpoint

    def recording(payload, path):
        written.append((Path(path).name, payload["epoch"]))
        return save(payload, path)

    monkeypatch.setattr(callbacks, "save_checkpoint", recording)
    configs = []
    checkpointer = Checkpointer(run, ModelConfig(), {"lr": 0.1}, configs.append)
    trainer = fake_trainer()
    checkpointer.on_fit_start(trainer)
    assert run.path.is_dir() and configs == [run.config]
    for loss in (5.0, 6.0, 4.0):
        finish_epoch(trainer, checkpointer, loss)
    assert written == [("best.pt", 1), ("checkpoint.pt", 1), ("checkpoint.pt", 2), ("best.pt", 3), ("checkpoint.pt", 3)]
    best = torch.load(run.best, weights_only=False)
    assert (best["epoch"], best["best_loss"], best["config"]) == (3, 4.0, {"lr": 0.1})
    assert best["model_config"] == dataclasses.asdict(ModelConfig())
    torch.testing.assert_close(best["model"]["weight"], trainer.model.weight)
    torch.testing.assert_close(best["matcher"]["bias"], trainer.matcher.bias)


def test_metrics_log_rewrites_the_file_from_the_history_then_appends_each_epoch(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    lines = [json.dumps(stats(e, 3.0 - e)) for e in (1, 2)]
    run.metrics.write_text("\n".join(lines) + '\n{"epoch": 3, "lo')  # epoch 2 was not checkpointed; 3 was cut short
    log = MetricsLog(run)
    trainer = fake_trainer([stats(1, 2.0)])
    log.on_fit_start(trainer)
    assert run.metrics.read_text() == lines[0] + "\n"
    finish_epoch(trainer, log, 1.5)
    assert [json.loads(line) for line in run.metrics.read_text().splitlines()] == trainer.history


def test_metrics_log_of_a_new_run_starts_empty(tmp_path):
    run = RunDir(tmp_path / "new")
    MetricsLog(run).on_fit_start(fake_trainer())
    assert run.metrics.read_text() == ""


def test_curve_plot_redraws_the_picture_after_every_epoch_with_its_margin(tmp_path, monkeypatch):
    calls = []
    plot = qaconv.viz.curves.plot_training_curves

    def recording(history, path, margin=None):
        calls.append((len(history), Path(path), margin))
        return plot(history, path, margin)

    monkeypatch.setattr(qaconv.viz.curves, "plot_training_curves", recording)
    run = RunDir(tmp_path)
    curves, trainer = CurvePlot(run, margin=16.0), fake_trainer()
    finish_epoch(trainer, curves, 3.0)
    finish_epoch(trainer, curves, 2.0)
    assert calls == [(1, run.curves, 16.0), (2, run.curves, 16.0)]
    with Image.open(run.curves) as picture:
        assert picture.format == "PNG" and picture.size == (900, 320)


def test_tensorboard_log_drops_the_events_of_the_epochs_a_resumed_run_repeats(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = RunDir(tmp_path)
    first, log = fake_trainer(), TensorBoardLog(run)
    log.on_fit_start(first)
    for loss in (3.0, 2.0, 1.0):
        finish_epoch(first, log, loss)
    log.on_fit_end(first)
    assert log.writer is None
    # TensorBoard reads event files in name order: seconds, then a per-process counter compared as text
    # (so writer 10 sorts before writer 9). A resumed run is a later process; start it in a later second.
    time.sleep(1.001 - time.time() % 1)
    resumed, log = fake_trainer([stats(1, 3.0)]), TensorBoardLog(run)  # from the checkpoint of epoch 1
    log.on_fit_start(resumed)
    finish_epoch(resumed, log, 2.5)
    log.on_fit_end(resumed)
    events = EventAccumulator(str(run.tensorboard))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(1, 3.0), (2, 2.5)]
    assert [(e.step, e.value) for e in events.Scalars("train/lr")] == [
        (1, pytest.approx(0.01)),
        (2, pytest.approx(0.01)),
    ]


def test_console_log_prints_one_line_per_epoch(capsys):
    trainer = fake_trainer()
    finish_epoch(trainer, ConsoleLog(), 1.23456)
    finish_epoch(trainer, ConsoleLog(), 1.0, skipped=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "epoch 1: loss 1.235, acc 50.0%, 100 img/s, graph 0.5s, lr 1.00e-02"
    assert lines[1].endswith("lr 1.00e-02, skipped 2") and len(lines) == 2


def test_console_log_says_when_the_warmup_loss_hands_over(capsys):
    log = ConsoleLog()
    trainer = fake_trainer()
    for name in ("pairwise", "pairwise", "triplet", "triplet"):
        trainer.epoch += 1
        trainer.history.append(record := stats(trainer.epoch, 2.0) | {"loss_name": name})
        log.on_epoch_end(trainer, record)
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "epoch 3 trained with the triplet loss (epochs before: pairwise)" and len(lines) == 5


def progress_epoch(progress, total):
    trainer = SimpleNamespace(loader=SimpleNamespace(batch_size=8), ctx=SimpleNamespace(world_size=2))
    progress.on_epoch_start(trainer, 2, total)
    for done in range(1, total + 1):
        progress.on_batch_end(trainer, done, np.array([2.0 * done, 0.5 * done, done, 0]))
    return trainer


def test_progress_without_a_terminal_prints_a_line_every_tenth_of_the_epoch(capsys):
    progress = Progress(tty=False)
    progress.on_epoch_end(progress_epoch(progress, 20), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("epoch 2 [2/20] loss 2.000, acc 50.0%, img/s ")
    assert lines[-1].startswith("epoch 2 [20/20] ") and lines[-1].endswith(", eta 0s")


def test_progress_on_a_terminal_is_a_bar_closed_with_the_epoch(capsys):
    progress = Progress(tty=True)
    trainer = progress_epoch(progress, 4)
    assert progress.bar.n == 4 and progress.images == 16  # a batch of every process
    progress.on_epoch_end(trainer, {})
    assert progress.bar is None and capsys.readouterr().out == ""
