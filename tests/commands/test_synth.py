"""`qaconv synth`: writes a set and reports it; bad options and output folders are one-line errors
naming the option (exit 2) before anything is drawn, and nothing already there is lost."""

from __future__ import annotations

import json
import sys

import pytest

from qaconv.cli import main
from tests.data.synthetic.conftest import read_bytes

TINY = ["--ids", "8", "--cams", "3", "--images-per-id", "5", "--height", "64", "--width", "32"]


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["synth", "--out", str(out), *TINY, "--seed", "4", "--style", "B", "--workers", "1"]
    assert main(args) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["num_ids"], meta["num_cams"], meta["style"], meta["height"]) == (8, 3, "B", 64)
    assert "bounding_box_train" in capsys.readouterr().out
    before = read_bytes(out)
    assert main(args) == 2  # exists: needs --overwrite
    err = _error(capsys)
    assert "pass --overwrite" in err and "overwrite=True" not in err  # CLI wording, not the API's
    assert read_bytes(out) == before
    assert main([*args, "--overwrite"]) == 0
    assert main(["synth", "--out", str(tmp_path / "bad"), "--cams", "12"]) == 2
    assert "--cams must be at most 9, got 12" in _error(capsys)  # the flag, not the field, is named


def test_workers(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    assert "0: in this process" in " ".join(capsys.readouterr().out.split())  # as in every command
    assert main(["synth", "--out", str(tmp_path / "neg"), *TINY, "--workers", "-3"]) == 2
    assert _error(capsys).startswith("qaconv synth: error: --workers must be >= 0 (0: in this process), got -3")
    assert not (tmp_path / "neg").exists()
    assert main(["synth", "--out", str(tmp_path / "all"), *TINY, "--workers", "0"]) == 0
    assert (tmp_path / "all" / "meta.json").is_file()


def test_an_output_folder_that_cannot_be_written(tmp_path, capsys):
    a_file = tmp_path / "meta.json"
    a_file.write_text("mine")
    cases = [(a_file, "exists and is not a folder"), (a_file / "sub", "cannot create the folder")]
    if sys.platform.startswith("linux"):
        cases.append(("/proc/qaconv-synth", "cannot be written"))
    for out, message in cases:
        assert main(["synth", "--out", str(out), *TINY, "--workers", "1"]) == 2
        err = _error(capsys)
        assert err.startswith(f"qaconv synth: error: --out {out}") and message in err, err
    assert a_file.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]
