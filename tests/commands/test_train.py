"""`qaconv train` as a user meets it: checks before work, the run-folder lock, interruptions and resume, its flags,
the files a run writes, and a resumed run whose changed options take effect and are recorded, or are refused with
the reason."""

import dataclasses
import json
import subprocess
import sys
import time

import pytest
import torch
import yaml

from qaconv.cli import main
from qaconv.engine.checkpoint import read_checkpoint, save_checkpoint
from tests.commands.conftest import train_args


def one_line_error(capsys, code, text):
    assert code == 2
    err = capsys.readouterr().err
    assert text in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        (["--testsets", "cuhk03_np_detected"], "--testset cuhk03_np_detected"),
        (["--testsets", "no/such/folder"], "--testset no/such/folder"),
        (["--eval-dtype", "float16"], "--eval-dtype float16 needs a CUDA device"),
        (["--eval-dtype", "bogus"], "--eval-dtype must be one of auto, float32, bfloat16, float16"),
    ],
)
def test_what_would_fail_after_training_fails_before_it(synth, tmp_path, capsys, extra, text):
    one_line_error(capsys, main(train_args(synth, tmp_path / "run", *extra)), text)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_an_out_that_is_a_file_is_refused(synth, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    one_line_error(capsys, main(train_args(synth, tmp_path / "file")), "exists and is not a folder")
    one_line_error(capsys, main(train_args(synth, tmp_path / "file" / "sub")), "cannot create the folder")


def test_a_second_training_into_a_locked_folder_refuses_and_a_dead_holder_is_taken_over(synth, tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from qaconv.lock import FolderLock; "
         "FolderLock(sys.argv[1], 'qaconv train').acquire(); print('locked', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.perf_counter()
        code = main(train_args(synth, out))
        assert time.perf_counter() - start < 10  # refused at once, no training
        one_line_error(capsys, code, f"{out} is in use by another qaconv process (pid {holder.pid}, qaconv train")
    finally:
        holder.kill()
        holder.wait()
    assert main(train_args(synth, out)) == 0  # the killed holder's lock is taken over
    assert json.loads((out / "results.json").read_text())["B"]


def test_resume_always_works_after_an_interruption_and_leaves_no_temporary_files(synth, tmp_path, capsys, monkeypatch):
    from qaconv.engine.train import Trainer

    out = tmp_path / "run"
    real = Trainer.train_epoch

    def interrupted(self, epoch, max_batches=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)  # Ctrl-C in epoch 1: no checkpoint yet
    assert main(train_args(synth, out)) == 130
    assert f"no epoch had finished); continue with: qaconv train --resume {out}" in capsys.readouterr().out
    monkeypatch.setattr(Trainer, "train_epoch", real)
    (out / ".checkpoint.pt.abc123.tmp").write_bytes(b"partial")  # a write cut short by a kill
    assert main(["train", "--resume", str(out)]) == 0
    assert "starting the run again from its options" in capsys.readouterr().out
    assert not list(out.glob(".*.tmp"))
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_resuming_a_finished_run_says_so_and_only_evaluates_what_is_missing(synth, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(synth, out)) == 0
    (out / "results.json").unlink()  # as if killed during the final evaluation
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "training had finished (epoch 2); give --max-epochs M to train further" in printed
    assert "B" in json.loads((out / "results.json").read_text())
    assert main(["train", "--resume", str(out)]) == 0
    assert "results:" not in capsys.readouterr().out  # nothing left to evaluate


def test_resume_without_config_yaml_reads_the_options_from_the_checkpoint(synth, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(synth, out, "--max-epochs", "1", "--testsets", "")) == 0
    (out / "config.yaml").unlink()
    assert main(["train", "--resume", str(out), "--max-epochs", "2"]) == 0
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def copy_of(synth, tmp_path):
    import shutil

    shutil.copytree(synth / "A", tmp_path / "A")
    return tmp_path


def train_images(root):
    return sorted((root / "A" / "bounding_box_train").glob("*.jpg"))


def print_warnings(monkeypatch):
    """Show warnings on stderr as the CLI formats them (pytest records them otherwise)."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    monkeypatch.setattr(warnings, "showwarning", show)


def test_unreadable_training_images_stop_the_run_before_any_work_or_are_skipped(synth, tmp_path, capsys, monkeypatch):
    mine = copy_of(synth, tmp_path)
    images = train_images(mine)
    images[3].write_bytes(images[3].read_bytes()[:300])  # truncated
    images[7].write_bytes(b"")
    out = tmp_path / "run"
    assert main(train_args(mine, out, "--testsets", "")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"qaconv train: error: 2 of {len(images)} training images cannot be read: {images[3]} (")
    assert f"{images[7]} (not an image file); remove or replace them, or pass --skip-bad-images" in err
    assert err.count("\n") == 1 and not out.exists()  # refused before the run folder was made
    print_warnings(monkeypatch)
    assert main(train_args(mine, out, "--testsets", "", "--max-epochs", "1", "--skip-bad-images")) == 0
    err = capsys.readouterr().err
    assert f"qaconv train: warning: 2 of {len(images)} training images cannot be read: {images[3]}" in err
    assert "training without them (--skip-bad-images)" in err


def test_resume_goes_on_after_damaged_images_are_removed_and_refuses_a_new_network(
    synth, tmp_path, capsys, monkeypatch
):
    mine = copy_of(synth, tmp_path)
    out = tmp_path / "run"
    assert main(train_args(mine, out, "--testsets", "", "--max-epochs", "1")) == 0
    images = train_images(mine)
    images[0].write_bytes(b"")  # damaged after epoch 1
    one_line_error(capsys, main(["train", "--resume", str(out), "--max-epochs", "2"]), f"{images[0]} (not an image")
    one_line_error(
        capsys,
        main(["train", "--resume", str(out), "--neck", "16"]),
        f"--resume {out}: --neck 16 differs from the run's 8, and a run's network cannot change",
    )
    images[0].unlink()
    payload = read_checkpoint(out / "checkpoint.pt")
    save_checkpoint({**payload, "model_config": {**payload["model_config"], "neck": 16}}, out / "other.pt")
    (out / "checkpoint.pt").rename(out / "mine.pt")
    (out / "other.pt").rename(out / "checkpoint.pt")  # another network's checkpoint copied into the run
    one_line_error(capsys, main(["train", "--resume", str(out)]), "holds another network than the run's options")
    (out / "mine.pt").replace(out / "checkpoint.pt")
    print_warnings(monkeypatch)
    assert main(["train", "--resume", str(out), "--max-epochs", "2"]) == 0
    err = capsys.readouterr().err
    assert f"training images changed since epoch 1 was saved ({len(images)} images of 8 ids then, " in err
    assert f"{len(images) - 1} of 8 now)" in err
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_a_data_set_path_that_does_not_exist_is_called_that(synth, tmp_path, capsys):
    args = train_args(synth, tmp_path / "run")
    args[args.index("--dataset") + 1] = str(tmp_path / "missing")
    one_line_error(capsys, main(args), f"data set not found: {tmp_path / 'missing'} does not exist")


# ------------------------------------------------------------------------- audit cases E1-E16 (docs/reliability.md)


def folder_of_kind(tmp_path, kind):
    from qaconv.folders import mark

    folder = tmp_path / kind.name.replace(" ", "-")
    folder.mkdir()
    mark(folder, kind)
    return folder


@pytest.mark.parametrize("kind", ["RUN", "INDEX"])
def test_e1_e2_a_qaconv_folder_of_another_kind_given_as_the_data_set_is_named(synth, tmp_path, capsys, kind):
    from qaconv import folders

    folder = folder_of_kind(tmp_path, getattr(folders, kind))
    args = train_args(synth, tmp_path / "run")
    args[args.index("--dataset") + 1] = str(folder)
    one_line_error(capsys, main(args), f"{folder} is a qaconv {getattr(folders, kind).name} folder, not a data set")


def test_e3_a_data_set_folder_given_to_init_from_is_named(synth, tmp_path, capsys):
    one_line_error(capsys, main(train_args(synth, tmp_path / "run", "--init-from", str(synth / "A"))),
                   f"checkpoint {synth / 'A'} is a qaconv data set folder, not a run folder")  # fmt: skip


@pytest.mark.parametrize("kind", ["DATASET", "INDEX", "EXPORT"])
def test_e4_e5_a_run_is_not_written_into_a_folder_of_another_kind_even_with_overwrite(synth, tmp_path, capsys, kind):
    from qaconv import folders

    folder = folder_of_kind(tmp_path, getattr(folders, kind))
    one_line_error(capsys, main(train_args(synth, folder, "--overwrite")),
                   f"--out {folder} is a qaconv {getattr(folders, kind).name} folder, not a run")  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gs-warmup", "fast"], "--gs-warmup must be auto or a number of 0 or more, got 'fast'"),
        (["--gs-warmup", "-1"], "--gs-warmup must be auto or a number of 0 or more, got '-1'"),
        (["--gs-warmup", "2.5"], "--gs-warmup must be auto or a number of 0 or more, got '2.5'"),
        (["--gs-warmup-accuracy", "0"], "--gs-warmup-accuracy must be greater than 0, got 0"),
        (["--gs-warmup-accuracy", "1.5"], "--gs-warmup-accuracy must be at most 1, got 1.5"),
        (["--gs-warmup-share", "0"], "--gs-warmup-share must be greater than 0, got 0"),
        (["--val-share", "0.6"], "--val-share must be at most 0.5, got 0.6"),
        (["--val-every", "0"], "--val-every must be at least 1, got 0"),
        (["--val-sets", "nosuchset"], "--testset nosuchset"),
    ],
)
def test_e6_to_e10_bad_warm_up_and_validation_options_are_refused_before_training(synth, tmp_path, capsys, flags,
                                                                                  message):  # fmt: skip
    one_line_error(capsys, main(train_args(synth, tmp_path / "run", *flags)), message)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_e12_the_former_flag_gs_warmup_epochs_still_sets_the_warm_up(synth, tmp_path):
    import yaml

    assert main(train_args(synth, tmp_path / "run", "--testsets", "", "--gs-warmup-epochs", "1")) == 0
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["sampler"]["gs_warmup"] == "1"


def test_e13_a_decompression_bomb_among_the_training_images_stops_the_run_before_it_starts(synth, tmp_path, capsys):
    import shutil

    from tests.commands.images import png_bomb

    data = shutil.copytree(synth / "A", tmp_path / "A")
    bomb = png_bomb(data / "bounding_box_train" / "0001_c1s1_000001_00.png", 20_000)
    args = train_args(synth, tmp_path / "run", "--testsets", "")
    args[args.index("--dataset") + 1] = str(data)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{bomb} (20000 x 20000 pixels" in err and "--skip-bad-images" in err
    with pytest.warns(UserWarning, match="training without them"):
        assert main([*args, "--skip-bad-images"]) == 0


def test_e14_a_training_image_with_an_exif_orientation_is_read_upright(synth, tmp_path):
    from PIL import Image

    from qaconv.data.loader import ImageDataset
    from tests.commands.images import sideways_with_exif

    source = sorted((synth / "A" / "bounding_box_train").glob("*.jpg"))[0]
    phone = sideways_with_exif(source, tmp_path / "phone.png")
    image, *_ = ImageDataset([(str(phone), 0, 0)])[0]
    assert image.size == Image.open(source).size


def test_e15_the_warm_start_recipe_says_what_it_uses(synth, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(train_args(synth, first, "--testsets", "", "--max-epochs", "1")) == 0
    capsys.readouterr()
    assert main(train_args(synth, tmp_path / "warm", "--testsets", "", "--init-from", str(first),
                           "--max-epochs", "1")) == 0  # fmt: skip
    assert "recipe: warm (a warm start; docs/training.md): logit_scale_floor 1.0" in capsys.readouterr().out


def test_e16_resume_of_a_folder_that_is_a_data_set_is_refused(synth, tmp_path, capsys):
    from qaconv.folders import DATASET

    folder = folder_of_kind(tmp_path, DATASET)
    one_line_error(capsys, main(["train", "--resume", str(folder)]), f"--resume {folder} is a qaconv data set folder")


def test_e17_a_run_whose_checkpoints_would_not_fit_is_refused_before_the_first_epoch(synth, tmp_path, capsys,
                                                                                      monkeypatch):  # fmt: skip
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    one_line_error(capsys, main(train_args(synth, tmp_path / "run", "--testsets", "")),
                   "the run's checkpoints will need about")  # fmt: skip
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


# ------------------------------------------------------------------------------------- options, a run, validation


def test_every_evaluation_option_is_a_flag_of_qaconv_evaluate_and_of_qaconv_train():
    from qaconv.cli import build_parser
    from qaconv.config import EvaluationConfig, given

    args = build_parser().parse_args(["evaluate", "--checkpoint", "c", "--testset", "t", "--k1", "7", "--k2", "3",
                                      "--lambda-value", "0.5", "--K", "5", "--workers", "2"])  # fmt: skip
    assert given(args) == {"evaluation.testsets": ["t"], "evaluation.k1": 7, "evaluation.k2": 3,
                           "evaluation.lambda_value": 0.5, "evaluation.K": 5, "run.workers": 2}  # fmt: skip
    train = given(build_parser().parse_args(["train", "--k1", "9", "--save-scores", "--eval-batch", "8"]))
    assert train == {"evaluation.k1": 9, "evaluation.save_scores": True, "evaluation.batch_size": 8}
    assert {f.name for f in dataclasses.fields(EvaluationConfig)} >= {"k1", "tau", "cache_dir", "report"}


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


def test_cli_validation_shows_in_the_log_the_metrics_tensorboard_and_the_curves(synth, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "--out", str(run_dir), "--dataset", str(synth / "A"), "--testsets", "", "--val-share", "0.25"]
    args += ["--arch", "resnet18", "--final-layer", "layer2", "--neck", "8", "--height", "32", "--width", "16"]
    args += ["--pretrained", "none", "--batch-size", "8", "--max-epochs", "2", "--max-iters-per-epoch", "2"]
    args += ["--workers", "0", "--device", "cpu", "--val-sets", str(synth / "B")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "held-out Rank-1" in out and ", B Rank-1" in out
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(last["val"]) == {"held-out", "B"} and last["val_mAP"] == pytest.approx(
        (last["val"]["held-out"]["mAP"] + last["val"]["B"]["mAP"]) / 2
    )
    assert (run_dir / "training_curves.png").is_file()
    events = list((run_dir / "tensorboard").glob("events.*"))
    if events:  # tensorboard is installed
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        tags = EventAccumulator(str(run_dir / "tensorboard")).Reload().Tags()["scalars"]
        assert {"val/held-out/mAP", "val/B/rank1"} <= set(tags)
    assert torch.load(run_dir / "best.pt", weights_only=False)["best_val_map"] == max(
        json.loads(line)["val_mAP"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    )


# ------------------------------------------------------------------------------------- options changed on resume


def lines(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def resume(run, *extra):
    return main(["train", "--resume", str(run), "--max-epochs", "4", *extra])


def test_a_learning_rate_given_on_resume_trains_from_the_next_epoch_and_is_recorded(stopped_run, capsys):
    assert resume(stopped_run, "--lr", "0.05") == 0
    out = capsys.readouterr().out
    assert "resuming with changed options: --lr 0.05 (was 0.01), --max-epochs 4 (was 2)" in out
    history = lines(stopped_run)
    assert history[2]["changed"] == {
        "optimization.lr": {"before": 0.01, "after": 0.05},
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
        (["--loss", "triplet"], "--loss triplet differs from the run's pairwise, and a different loss"),
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
