"""ResNet / IBN-Net backbones: public-checkpoint keys, reference parity, IBN placement, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qaconv.errors import QAConvError
from qaconv.models import build_resnet
from qaconv.models.resnet import DEPTHS, model_name

REFERENCE_MODELS = {
    "resnet50": (50, None),
    "resnet50_ibn_a": (50, "a"),
    "resnet50_ibn_b": (50, "b"),
    "resnet18": (18, None),
}
VARIANTS = [(d, ibn) for d in DEPTHS for ibn in (None, "a", "b") if not (d == 152 and ibn)]


def _meta(depth, ibn=None, **kw):
    with torch.device("meta"):  # shapes only, no memory, no init cost
        return build_resnet(depth, ibn, **kw)


def _layout(model):
    return [(k, list(v.shape)) for k, v in model.state_dict().items()]


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_keys_and_shapes_equal_public_checkpoint(name, backbone_keys):
    model = _meta(*REFERENCE_MODELS[name])
    assert _layout(model) == [(k, v) for k, v in backbone_keys[name].items()]
    assert model_name(*REFERENCE_MODELS[name]) == name


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_without_classifier_keys_are_the_rest(name, backbone_keys):
    model = _meta(*REFERENCE_MODELS[name], num_classes=0)
    expected = [(k, v) for k, v in backbone_keys[name].items() if not k.startswith("fc.")]
    assert _layout(model) == expected


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_eval_outputs_match_reference(name, deterministic_state, backbone_outputs):
    model = build_resnet(*REFERENCE_MODELS[name])
    model.load_state_dict(deterministic_state(model))
    model.eval()
    x = torch.from_numpy(backbone_outputs["input"])
    with torch.no_grad():
        for layer in ("layer2", "layer3", "layer4"):
            ref = backbone_outputs[f"{name}.{layer}"]
            out = model.forward_features(x, layer).numpy()
            assert out.shape == ref.shape
            err = np.abs(out - ref).max() / np.abs(ref).mean()
            assert err < 1e-4, f"{name}.{layer}: relative error {err:.2e}"


@pytest.mark.parametrize(("depth", "ibn"), VARIANTS)
def test_every_variant_has_the_ibn_layout(depth, ibn):
    model = _meta(depth, ibn)
    keys = set(model.state_dict())
    expansion = 1 if depth in (18, 34) else 4
    for attr in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
        assert hasattr(model, attr)
    for i, layer in enumerate(("layer1", "layer2", "layer3", "layer4")):
        assert model.stage_channels(layer) == 64 * 2**i * expansion
        blocks = getattr(model, layer)
        for j, block in enumerate(blocks):
            prefix = f"{layer}.{j}."
            split_bn1 = f"{prefix}bn1.IN.weight" in keys
            assert split_bn1 == (ibn == "a" and layer != "layer4")
            if split_bn1:  # IN over the first half, BN over the rest
                assert block.bn1.IN.num_features == block.bn1.BN.num_features == block.conv1.out_channels // 2
            in_after_add = f"{prefix}IN.weight" in keys
            assert in_after_add == (ibn == "b" and layer in ("layer1", "layer2") and j == len(blocks) - 1)
            if in_after_add:
                assert model.state_dict()[f"{prefix}IN.weight"].shape[0] == model.stage_channels(layer)
    # IBN-b: the stem norm is an affine InstanceNorm (no running statistics)
    assert ("bn1.running_mean" in keys) == (ibn != "b")
    assert isinstance(model.bn1, torch.nn.InstanceNorm2d) == (ibn == "b")


@pytest.mark.parametrize("ibn", ["a", "b", "B"])
def test_resnet152_with_ibn_is_refused(ibn):
    with pytest.raises(QAConvError, match="resnet152"):
        build_resnet(152, ibn)


@pytest.mark.parametrize("depth", [0, 26, "resnet200", "vgg16"])
def test_unknown_depth_is_refused(depth):
    with pytest.raises(QAConvError, match="resnet18, resnet34, resnet50, resnet101, resnet152"):
        build_resnet(depth)


@pytest.mark.parametrize("ibn", ["c", "ibn_a", 1])
def test_unknown_ibn_is_refused(ibn):
    with pytest.raises(QAConvError, match="ibn must be"):
        build_resnet(18, ibn)


@pytest.mark.parametrize("arch", [18, "18", "resnet18", "ResNet18"])
def test_arch_spellings(arch):
    assert _meta(arch).depth == 18
    assert _meta(arch, "none").ibn is None


def test_forward_gives_logits_and_truncate_gives_maps():
    torch.manual_seed(0)
    model = build_resnet(18, "b").eval()
    x = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 1000)
        full = model.state_dict()
        ref = model.forward_features(x, "layer2")
        model.truncate("layer2")
        assert not hasattr(model, "layer3") and not hasattr(model, "fc")
        assert model(x).shape == (2, 128, 8, 4)
        torch.testing.assert_close(model(x), ref)
    # keys of the removed stages are ignored, so a full checkpoint still loads strictly
    result = model.load_state_dict(full)
    assert not result.missing_keys and not result.unexpected_keys
    with pytest.raises(QAConvError, match="final_layer"):
        build_resnet(18).truncate("layer5")
