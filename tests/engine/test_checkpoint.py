import pytest
import torch

from qaconv.config import ModelConfig
from qaconv.engine.checkpoint import (
    build_model,
    load_model,
    model_payload,
    read_checkpoint,
    save_checkpoint,
    state_fingerprint,
)
from qaconv.errors import QAConvError

CONFIG = ModelConfig(arch="resnet18", ibn="b", final_layer="layer2", neck=4, height=32, width=16)


def test_fingerprint_follows_weights_and_config():
    model, matcher = build_model(CONFIG)
    first = state_fingerprint(model, matcher, CONFIG)
    assert first == state_fingerprint(model, matcher, CONFIG)
    assert first != state_fingerprint(model, matcher, ModelConfig(**{**CONFIG.__dict__, "height": 64}))
    with torch.no_grad():
        model.neck_conv.bias[0] += 1e-3
    assert state_fingerprint(model, matcher, CONFIG) != first


def test_save_and_load_round_trip(tmp_path):
    model, matcher = build_model(CONFIG)
    save_checkpoint(model_payload(model, matcher, CONFIG, epoch=3), tmp_path / "checkpoint.pt")
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed
    loaded, loaded_matcher, config = load_model(tmp_path)  # a run folder works
    assert config == CONFIG and not loaded.training
    assert state_fingerprint(loaded, loaded_matcher) == state_fingerprint(model, matcher)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    model, matcher = build_model(CONFIG)
    path = save_checkpoint(model_payload(model, matcher, CONFIG, epoch=1), tmp_path / "checkpoint.pt")
    with pytest.raises(Exception, match="pickle"):
        save_checkpoint({"bad": lambda: None}, path)  # pickling fails mid-write
    assert read_checkpoint(path)["epoch"] == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_foreign_and_incompatible_checkpoints_are_named(tmp_path):
    torch.save({"model": {}, "criterion": {}}, tmp_path / "published.pth.tar")
    with pytest.raises(QAConvError, match="published-code checkpoint.*--init-from"):
        read_checkpoint(tmp_path / "published.pth.tar")
    model, matcher = build_model(CONFIG)
    payload = model_payload(model, matcher, CONFIG)
    del payload["matcher"]["fc.bias"]
    save_checkpoint(payload, tmp_path / "missing.pt")
    with pytest.raises(QAConvError, match=r"matcher does not fit: missing keys \['fc.bias'\]"):
        load_model(tmp_path / "missing.pt")
    save_checkpoint(model_payload(model, matcher, ModelConfig(**{**CONFIG.__dict__, "neck": 8})), tmp_path / "shape.pt")
    with pytest.raises(QAConvError, match="neck_conv.weight has shape"):
        load_model(tmp_path / "shape.pt")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(QAConvError, match="no checkpoint.pt in run folder"):
        load_model(tmp_path / "empty_run")
