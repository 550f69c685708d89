"""`qaconv export`: a clear message when the ONNX packages are missing, an earlier export replaced only with
--overwrite, bad output folders and NaN weights refused."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from qaconv.cli import main
from qaconv.errors import QAConvError
from qaconv.folders import MARKER
from qaconv.inference import export_model
from qaconv.inference.export import require_onnx


def test_onnx_export_says_which_package_to_install(checkpoint, tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    message = r"ONNX export needs the optional package 'onnx', which is not installed: pip install onnx"
    with pytest.raises(QAConvError, match=message):
        require_onnx()
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(tmp_path / "o")]) == 2
    assert "pip install 'qaconv[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_export_replaces_an_earlier_export_only_with_overwrite(checkpoint, tmp_path, capsys):
    out = tmp_path / "ts"
    out.mkdir()
    earlier = {"export.json": b'{"earlier": true}', "matcher.onnx": b"onnx", "feature_extractor.onnx": b"onnx"}
    for name, data in earlier.items():
        (out / name).write_bytes(data)
    again = ["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--out", str(out)]
    assert main(again) == 2
    assert f"--out {out} already holds an export; pass --overwrite to replace it" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier  # the earlier export is intact
    assert main([*again, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "export.json", "feature_extractor.pt", "matcher.pt"]
    assert json.loads((out / "export.json").read_text())["format"] == "torchscript"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ts"]  # no partial or set-aside folder left


def test_export_refuses_bad_output_folders_and_nan_weights(reid, checkpoint, nan_checkpoint, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    base = ["export", "--format", "torchscript", "--checkpoint"]
    assert main([*base, str(checkpoint), "--out", str(tmp_path / "file" / "sub")]) == 2
    assert "cannot create the folder" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main([*base, str(checkpoint), "--out", str(tmp_path / "mine")]) == 2
    assert "is a non-empty folder that is not a qaconv export" in capsys.readouterr().err
    assert main([*base, str(nan_checkpoint), "--out", str(tmp_path / "nan")]) == 2
    assert "holds non-finite weights" in capsys.readouterr().err
    assert not (tmp_path / "nan").exists()
    with torch.no_grad():
        saved = reid.matcher.logit_bn.running_var.clone()
        reid.matcher.logit_bn.running_var.fill_(-1.0)  # a NaN scale: the check must fail, not pass with diff nan
        try:
            with pytest.raises(QAConvError, match="matcher gives non-finite outputs"):
                export_model(reid, "torchscript", tmp_path / "bad")
        finally:
            reid.matcher.logit_bn.running_var.copy_(saved)
    assert not (tmp_path / "bad").exists()
