"""`qaconv export`: TorchScript always, ONNX when onnx/onnxruntime are installed; a clear message when they are not."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qaconv.cli import main
from qaconv.errors import QAConvError
from qaconv.folders import MARKER
from qaconv.inference import export_model
from qaconv.inference.export import require_onnx


def inputs(seed: int, n: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images and maps of sizes other than the export's examples (batch 2, 2 probes x 3 galleries)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 64, 32, generator=g)
    prob = F.normalize(torch.randn(n + 1, 16, 4, 2, generator=g), dim=1)
    gal = F.normalize(torch.randn(5, 16, 4, 2, generator=g), dim=1)
    return images, prob, gal


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_matches_the_model(reid, checkpoint, tmp_path, capsys):
    out = tmp_path / "ts"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "feature_extractor.pt  (max |diff| vs PyTorch" in printed
    extractor = torch.jit.load(str(out / "feature_extractor.pt"))
    matcher = torch.jit.load(str(out / "matcher.pt"))
    images, prob, gal = inputs(1)
    with torch.no_grad():
        torch.testing.assert_close(extractor(images), reid.model(images), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(matcher(prob, gal), reid.matcher(prob, gal), atol=1e-4, rtol=1e-5)
    record = json.loads((out / "export.json").read_text())
    assert record["files"] == {"feature_extractor": "feature_extractor.pt", "matcher": "matcher.pt"}
    assert record["fingerprint"] == reid.fingerprint
    assert record["inputs"]["feature_extractor"]["images"] == ["N", 3, 64, 32]
    assert max(record["max_abs_diff"].values()) < 1e-4


def test_onnx_export_matches_the_model(reid, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    record = export_model(reid, "onnx", tmp_path)
    assert max(record["max_abs_diff"].values()) < 1e-4
    images, prob, gal = inputs(2)
    extractor = ort.InferenceSession(str(tmp_path / "feature_extractor.onnx"), providers=["CPUExecutionProvider"])
    matcher = ort.InferenceSession(str(tmp_path / "matcher.onnx"), providers=["CPUExecutionProvider"])
    maps = extractor.run(None, {"images": images.numpy()})[0]
    scores = matcher.run(None, {"prob": prob.numpy(), "gal": gal.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(maps, reid.model(images).numpy(), atol=1e-4)
        np.testing.assert_allclose(scores, reid.matcher(prob, gal).numpy(), atol=1e-4)


def test_onnx_export_says_which_package_to_install(checkpoint, tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    message = r"ONNX export needs the optional package 'onnx', which is not installed: pip install onnx"
    with pytest.raises(QAConvError, match=message):
        require_onnx()
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(tmp_path / "o")]) == 2
    assert "pip install 'qaconv[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_export_refuses_a_file_as_output_folder(reid, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(QAConvError, match="exists and is not a folder"):
        export_model(reid, "torchscript", target)
    with pytest.raises(QAConvError, match="--format must be one of torchscript, onnx"):
        export_model(reid, "tflite", tmp_path)


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


def test_a_second_export_into_a_locked_folder_refuses_at_once(reid, tmp_path):
    from qaconv.lock import FolderLock

    refused = pytest.raises(QAConvError, match=r"ts is in use by another qaconv process \(pid \d+, qaconv export")
    with FolderLock.beside(tmp_path / "ts", "qaconv export"), refused:
        export_model(reid, "torchscript", tmp_path / "ts")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_full_disk_stops_an_export_with_one_line_and_keeps_the_earlier_one(reid, tmp_path, monkeypatch):
    export_model(reid, "torchscript", tmp_path / "ts")
    earlier = {p.name: p.read_bytes() for p in (tmp_path / "ts").iterdir()}

    def no_space(module, f):  # what writing to a full disk raises (a path made torch abort the process)
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch.jit, "save", no_space)
    with pytest.raises(QAConvError, match=r"cannot write .*ts: the disk is full .*; the previous ts is kept"):
        export_model(reid, "torchscript", tmp_path / "ts", overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "ts").iterdir()} == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ts"]
