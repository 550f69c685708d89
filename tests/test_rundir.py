"""The files of a run folder, named once."""

from qaconv.lock import FolderLock
from qaconv.rundir import RunDir


def test_every_file_has_its_fixed_name_in_the_folder(tmp_path):
    run = RunDir(str(tmp_path / "run"))
    names = {
        "checkpoint": "checkpoint.pt",
        "best": "best.pt",
        "config": "config.yaml",
        "metrics": "metrics.jsonl",
        "results": "results.json",
        "curves": "training_curves.png",
        "tensorboard": "tensorboard",
        "report": "report",
        "lock": ".lock",
    }
    for attribute, name in names.items():
        assert getattr(run, attribute) == tmp_path / "run" / name, attribute
    assert not (tmp_path / "run").exists()  # naming creates nothing
    assert repr(run) == f"RunDir({str(tmp_path / 'run')!r})"


def test_the_lock_is_the_one_folder_lock_takes(tmp_path):
    assert RunDir(tmp_path).lock == FolderLock(tmp_path, "qaconv train").path


def test_run_files_are_what_a_training_run_writes(tmp_path):
    run = RunDir(tmp_path)
    assert run.run_files() == [run.checkpoint, run.best, run.config, run.metrics, run.results, run.curves]
