"""`qaconv evaluate` with folders of the wrong kind and outputs that would not fit (audit cases D1-D5 of
docs/reliability.md)."""

from __future__ import annotations

import shutil
from collections import namedtuple

import pytest

from qaconv.cli import main
from qaconv.folders import DATASET, INDEX, mark


def evaluate(checkpoint, synthetic, *extra):
    return main(["evaluate", "--checkpoint", str(checkpoint), "--testset", str(synthetic), "--device", "cpu",
                 "--workers", "0", *map(str, extra)])  # fmt: skip


@pytest.mark.parametrize("kind", [DATASET, INDEX])
def test_d1_d2_results_are_not_written_into_a_folder_of_another_kind(checkpoint, synthetic, tmp_path, capsys, kind):
    folder = tmp_path / "taken"
    folder.mkdir()
    mark(folder, kind)
    assert evaluate(checkpoint, synthetic, "--out", folder) == 2
    err = capsys.readouterr().err
    assert f"--out {folder} is a qaconv {kind.name} folder, not an evaluation" in err and err.count("\n") == 1


def test_d3_a_data_set_folder_given_as_the_checkpoint_is_named(synthetic, capsys):
    assert evaluate(synthetic, synthetic) == 2
    assert f"checkpoint {synthetic} is a qaconv data set folder, not a run folder" in capsys.readouterr().err


def test_d4_a_run_folder_given_as_the_test_set_is_named(checkpoint, tmp_path, capsys):
    run = shutil.copytree(checkpoint, tmp_path / "run")
    assert evaluate(checkpoint, run) == 2
    assert f"{run} is a qaconv run folder, not a data set" in capsys.readouterr().err


def test_d5_score_files_the_disk_has_no_room_for_are_refused_before_any_feature_is_extracted(
    checkpoint, synthetic, tmp_path, capsys, monkeypatch
):
    import shutil as shutil_module

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(10**9, 10**9 - 10, 10))
    assert evaluate(checkpoint, synthetic, "--out", tmp_path / "ev", "--save-scores") == 2
    err = capsys.readouterr().err
    assert "--save-scores will need about" in err and "which has 0 MiB free" in err
    assert not list((tmp_path / "ev").glob("*_score.*"))
