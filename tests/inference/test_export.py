"""Export: TorchScript always, ONNX when onnx/onnxruntime are installed; refusals, the lock, a full disk. The command's
messages and folders are tested in tests/commands/test_export.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qaconv.cli import main
from qaconv.errors import QAConvError
from qaconv.inference import export_model


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


def test_export_refuses_a_file_as_output_folder(reid, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(QAConvError, match="exists and is not a folder"):
        export_model(reid, "torchscript", target)
    with pytest.raises(QAConvError, match="--format must be one of torchscript, onnx"):
        export_model(reid, "tflite", tmp_path)


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
