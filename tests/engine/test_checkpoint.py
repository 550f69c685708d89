import pytest
import torch

from qaconv.config import ModelConfig
from qaconv.engine.checkpoint import (
    build_model,
    load_initial_weights,
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


def test_published_checkpoint_imports_into_model_and_matcher(tmp_path):
    """The published code saves {'model': base.* / neck_conv.* (whole ResNet), 'criterion': matcher.*}."""
    from qaconv.models import build_resnet

    source_model, source_matcher = build_model(CONFIG)
    with torch.no_grad():
        source_model.neck_conv.weight.normal_()
        source_matcher.fc.bias.fill_(0.25)
    full_resnet = build_resnet(18, "b").state_dict()  # layer3/layer4/fc beyond the cut are ignored
    full_resnet.update(source_model.base.state_dict())
    model_state = {f"base.{k}": v for k, v in full_resnet.items()}
    model_state.update({f"neck_conv.{k}": v for k, v in source_model.neck_conv.state_dict().items()})
    criterion = {f"matcher.{k}": v for k, v in source_matcher.state_dict().items()}
    torch.save({"model": model_state, "criterion": criterion, "epoch": 7}, tmp_path / "checkpoint.pth.tar")

    model, matcher = build_model(CONFIG)
    load_initial_weights(tmp_path / "checkpoint.pth.tar", model, matcher, CONFIG)
    assert state_fingerprint(model, matcher) == state_fingerprint(source_model, source_matcher)

    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(QAConvError, match="--init-from .*: neither a qaconv checkpoint nor the published"):
        load_initial_weights(tmp_path / "other.pth", model, matcher, CONFIG)


def test_a_qaconv_run_folder_or_checkpoint_is_a_warm_start(tmp_path):
    source_model, source_matcher = build_model(CONFIG)
    with torch.no_grad():
        source_matcher.fc.bias.fill_(0.5)
    save_checkpoint(model_payload(source_model, source_matcher, CONFIG, epoch=3), tmp_path / "run" / "checkpoint.pt")
    for start in (tmp_path / "run", tmp_path / "run" / "checkpoint.pt"):
        model, matcher = build_model(CONFIG)
        load_initial_weights(start, model, matcher, CONFIG)
        assert state_fingerprint(model, matcher) == state_fingerprint(source_model, source_matcher)

    other = ModelConfig(**{**CONFIG.__dict__, "neck": 8})
    model, matcher = build_model(other)
    with pytest.raises(QAConvError, match="that model is not this one \\(neck 4 there, 8 here\\)"):
        load_initial_weights(tmp_path / "run", model, matcher, other)
    with pytest.raises(QAConvError, match="no checkpoint.pt in that folder"):
        load_initial_weights(tmp_path, model, matcher, other)


def test_non_finite_weights_are_refused_with_their_key(tmp_path):
    model, matcher = build_model(CONFIG)
    with torch.no_grad():
        model.neck_conv.weight[0, 0] = float("inf")
    save_checkpoint(model_payload(model, matcher, CONFIG), tmp_path / "diverged.pt")
    message = r"diverged.pt holds non-finite weights \(NaN or inf, first in model\.neck_conv"
    with pytest.raises(QAConvError, match=message):
        load_model(tmp_path / "diverged.pt")
