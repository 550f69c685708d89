"""qaconv.checksum: files written by torch.save carry their sha256 in the zip comment; damage is refused by name."""

from __future__ import annotations

import pytest
import torch

from qaconv.checksum import verify
from qaconv.config import ModelConfig
from qaconv.engine.checkpoint import build_model, load_initial_weights, model_payload, read_checkpoint, save_checkpoint
from qaconv.errors import QAConvError
from qaconv.io import atomic_torch_save

CONFIG = ModelConfig(arch="resnet18", ibn=None, final_layer="layer2", neck=4, height=32, width=16)


def flip(path, count=200):
    """Invert `count` bytes spread over the middle of the file, as a bad disk or copy would."""
    data = bytearray(path.read_bytes())
    for i in range(count):
        data[len(data) // 4 + i * 97] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_sealed_file_loads_with_torch_and_verifies(tmp_path):
    path = atomic_torch_save({"x": torch.arange(5)}, tmp_path / "c.pt")
    assert verify(path) is True
    assert torch.load(path)["x"].tolist() == [0, 1, 2, 3, 4]
    assert torch.load(path, mmap=True)["x"].tolist() == [0, 1, 2, 3, 4]


def test_files_without_a_checksum_still_load(tmp_path):
    torch.save({"x": torch.arange(3)}, tmp_path / "old.pt")  # a checkpoint written before checksums
    assert verify(tmp_path / "old.pt") is False


def test_a_checkpoint_with_flipped_bytes_is_refused_by_name(tmp_path):
    model, matcher = build_model(CONFIG)
    path = save_checkpoint(model_payload(model, matcher, CONFIG, epoch=1), tmp_path / "checkpoint.pt")
    assert read_checkpoint(path)["epoch"] == 1
    flip(path)
    with pytest.raises(QAConvError, match=r"checkpoint.pt is damaged: its bytes no longer match the sha256") as info:
        read_checkpoint(tmp_path)  # a run folder too
    assert "\n" not in str(info.value)
    with pytest.raises(QAConvError, match="is damaged"):
        load_initial_weights(path, model, matcher, CONFIG)


def test_an_unreadable_checkpoint_error_is_one_short_line(tmp_path):
    path = tmp_path / "checkpoint.pt"
    model, matcher = build_model(CONFIG)
    torch.save(model_payload(model, matcher, CONFIG), path)
    path.write_bytes(path.read_bytes()[:5000])  # truncated, without a checksum
    with pytest.raises(QAConvError, match=r"checkpoint.pt is not a readable checkpoint \(") as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400
