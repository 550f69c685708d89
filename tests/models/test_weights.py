"""Pretrained weights: from a file, from the torch hub cache by public file name, and every error."""

from __future__ import annotations

import pytest
import torch

from qaconv.errors import QAConvError
from qaconv.models import FeatureMapNet, build_resnet, find_imagenet_checkpoint, load_pretrained, read_state_dict
from qaconv.models.weights import LEGACY_FILE_NAMES, PUBLIC_CHECKPOINTS


@pytest.fixture(scope="module")
def r18_state():
    torch.manual_seed(123)
    return build_resnet(18).state_dict()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A fake torch hub dir; returns its checkpoints folder (not created)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def _assert_loaded(model, state):
    own = model.state_dict()
    for key, value in own.items():
        torch.testing.assert_close(value, state[key], msg=key)


def test_public_file_names():
    assert len(PUBLIC_CHECKPOINTS) == 13
    for name, (file, url) in PUBLIC_CHECKPOINTS.items():
        assert file.startswith(name + "-") and file.endswith(".pth") and url.endswith("/" + file)
    assert PUBLIC_CHECKPOINTS["resnet50_ibn_b"] == (
        "resnet50_ibn_b-9ca61e85.pth",
        "https://github.com/XingangPan/IBN-Net/releases/download/v1.0/resnet50_ibn_b-9ca61e85.pth",
    )
    assert PUBLIC_CHECKPOINTS["resnet50"][1] == "https://download.pytorch.org/models/resnet50-0676ba61.pth"


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "module", "both"])
def test_load_from_file(tmp_path, r18_state, wrap):
    state = r18_state
    if wrap in ("module", "both"):
        state = {f"module.{k}": v for k, v in state.items()}
    obj = {"state_dict": state, "epoch": 3} if wrap in ("state_dict", "both") else state
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    assert list(read_state_dict(path)) == list(r18_state)
    model = load_pretrained(build_resnet(18), str(path))
    _assert_loaded(model, r18_state)


def test_classifier_is_optional_for_a_model_without_it(tmp_path, r18_state):
    path = tmp_path / "w.pth"
    torch.save(r18_state, path)
    _assert_loaded(load_pretrained(build_resnet(18, num_classes=0), path), r18_state)


def test_featuremapnet_from_file(tmp_path, r18_state):
    path = tmp_path / "w.pth"
    torch.save(r18_state, path)
    net = FeatureMapNet("resnet18", ibn=None, final_layer="layer3", neck=16, pretrained=path)
    _assert_loaded(net.base, r18_state)


@pytest.mark.parametrize("how", ["get_dir", "TORCH_HOME"])
def test_featuremapnet_from_hub_cache(tmp_path, monkeypatch, r18_state, how):
    if how == "get_dir":
        monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    else:
        monkeypatch.setattr(torch.hub, "_hub_dir", None)  # in case torch.hub.set_dir was called
        monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(r18_state, folder / "resnet18-f37072fd.pth")
    net = FeatureMapNet("resnet18", ibn=None, final_layer="layer2", neck=0, pretrained="imagenet")
    _assert_loaded(net.base, r18_state)


def test_ibn_checkpoint_from_hub_cache(hub):
    torch.manual_seed(5)
    state = build_resnet(18, "b").state_dict()
    hub.mkdir(parents=True)
    torch.save(state, hub / "resnet18_ibn_b-bc2f3c11.pth")
    assert find_imagenet_checkpoint("resnet18_ibn_b") == hub / "resnet18_ibn_b-bc2f3c11.pth"
    _assert_loaded(load_pretrained(build_resnet(18, "b"), "imagenet"), state)


def test_legacy_torchvision_file_name_is_found(hub, r18_state):
    hub.mkdir(parents=True)
    torch.save(r18_state, hub / LEGACY_FILE_NAMES["resnet18"][0])
    _assert_loaded(load_pretrained(build_resnet(18), True), r18_state)


def test_absent_from_hub_cache_says_where_and_from_where(hub):
    with pytest.raises(QAConvError) as info:
        FeatureMapNet(pretrained="imagenet")  # resnet50, IBN-b
    message = str(info.value)
    assert "\n" not in message
    assert "resnet50_ibn_b-9ca61e85.pth" in message
    assert "https://github.com/XingangPan/IBN-Net/releases/download/v1.0/resnet50_ibn_b-9ca61e85.pth" in message
    assert str(hub) in message
    assert not hub.exists()  # nothing was created or downloaded


def test_download_only_when_asked(hub, monkeypatch, r18_state):
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        torch.save(r18_state, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(QAConvError, match="download=True"):
        load_pretrained(build_resnet(18), "imagenet")
    assert calls == []
    model = load_pretrained(build_resnet(18), "imagenet", download=True)
    assert calls == [("https://download.pytorch.org/models/resnet18-f37072fd.pth", "f37072fd")]
    assert (hub / "resnet18-f37072fd.pth").is_file()
    _assert_loaded(model, r18_state)


def test_unknown_public_name():
    with pytest.raises(QAConvError, match="no public ImageNet weights for resnet152_ibn_a"):
        find_imagenet_checkpoint("resnet152_ibn_a")


# ---------------------------------------------------------------------------------------------- errors
def test_missing_file(tmp_path):
    with pytest.raises(QAConvError, match="not found: .*nope.pth"):
        load_pretrained(build_resnet(18), tmp_path / "nope.pth")
    with pytest.raises(QAConvError, match="not found"):
        FeatureMapNet("resnet18", None, pretrained=str(tmp_path / "nope.pth"))


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(QAConvError, match="not a file"):
        read_state_dict(tmp_path)


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([torch.zeros(1)], "does not hold a state dict"),
        (torch.zeros(3), "does not hold a state dict"),
        ({}, "does not hold a state dict"),
        ({"epoch": 3, "model": {"a": torch.zeros(1)}}, "'epoch' is not a tensor"),
    ],
)
def test_not_a_state_dict(tmp_path, obj, match):
    path = tmp_path / "x.pth"
    torch.save(obj, path)
    with pytest.raises(QAConvError, match=match):
        read_state_dict(path)


def test_unreadable_file(tmp_path):
    path = tmp_path / "x.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(QAConvError, match="not a readable torch checkpoint"):
        read_state_dict(path)


def test_a_qaconv_checkpoint_given_as_pretrained_weights_points_to_init_from(tmp_path):
    from qaconv.config import ModelConfig
    from qaconv.engine.checkpoint import build_model, model_payload, save_checkpoint
    from qaconv.engine.train import capture_rng

    config = ModelConfig(arch="resnet18", ibn=None, final_layer="layer2", neck=4, height=32, width=16)
    model, matcher = build_model(config)
    path = save_checkpoint(model_payload(model, matcher, config, rng=capture_rng()), tmp_path / "c.pt")
    with pytest.raises(QAConvError, match=r"c.pt is a qaconv checkpoint, not backbone weights: .*--init-from") as info:
        read_state_dict(path)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


def test_missing_and_unexpected_keys_are_named(tmp_path, r18_state):
    state = dict(r18_state)
    del state["layer2.1.bn2.running_var"]
    state["layer9.extra"] = torch.zeros(1)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    with pytest.raises(QAConvError) as info:
        load_pretrained(build_resnet(18), path)
    message = str(info.value)
    assert "1 missing key(s) (layer2.1.bn2.running_var)" in message
    assert "1 unexpected key(s) (layer9.extra)" in message


def test_wrong_variant_is_named(tmp_path):
    path = tmp_path / "ibn_b.pth"
    torch.save(build_resnet(18, "b").state_dict(), path)
    with pytest.raises(QAConvError, match="missing key.*bn1.running_mean.*unexpected key.*IN.*looks like IBN-b"):
        load_pretrained(build_resnet(18), path)


def test_shape_mismatch_names_key_and_shapes(tmp_path, r18_state):
    state = dict(r18_state)
    state["layer3.0.conv1.weight"] = torch.zeros(256, 128, 1, 1)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    with pytest.raises(
        QAConvError,
        match=r"layer3\.0\.conv1\.weight has shape \[256, 128, 1, 1\] in the file "
        r"but \[256, 128, 3, 3\] in the model",
    ):
        load_pretrained(build_resnet(18), path)


def test_depth_mismatch(tmp_path, r18_state):
    path = tmp_path / "w.pth"
    torch.save(r18_state, path)
    with pytest.raises(QAConvError, match="missing key"):
        FeatureMapNet("resnet34", ibn=None, pretrained=path)


def test_no_source_leaves_the_model_as_it_is():
    model = build_resnet(18)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    for source in (None, False):
        assert load_pretrained(model, source) is model
    _assert_loaded(model, before)


def test_imagenet_weights_for_a_model_without_a_depth_need_a_name():
    with pytest.raises(QAConvError, match=r"needs name= for a model without \.depth"):
        load_pretrained(torch.nn.Linear(2, 2), "imagenet")


def test_a_failed_download_is_a_one_line_error(hub, monkeypatch):
    calls = []

    def offline(url, dst, hash_prefix=None, progress=True):
        calls.append(hash_prefix)
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    url = PUBLIC_CHECKPOINTS["resnet18_ibn_a"][1]
    with pytest.raises(QAConvError, match=f"could not download {url} to .*: network is unreachable$"):
        find_imagenet_checkpoint("resnet18_ibn_a", download=True)
    assert calls == [None]  # IBN-Net's file names carry no documented hash
