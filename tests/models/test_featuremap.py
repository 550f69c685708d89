"""FeatureMapNet: cut point, stride, neck, per-location L2 norm, published checkpoint keys."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from qaconv.errors import QAConvError
from qaconv.models import FeatureMapNet, build_resnet

CUTS = {"layer2": (8, 128), "layer3": (16, 256), "layer4": (32, 512)}  # resnet18: stride, channels


@pytest.mark.parametrize("final_layer", list(CUTS))
@pytest.mark.parametrize("neck", [0, -1, 16])
@pytest.mark.parametrize("size", [(64, 32), (70, 30)])
def test_shapes_strides_and_unit_norm(final_layer, neck, size):
    torch.manual_seed(0)
    net = FeatureMapNet("resnet18", ibn=None, final_layer=final_layer, neck=neck).eval()
    stride, channels = CUTS[final_layer]
    assert net.stride == stride
    assert net.out_channels == (neck if neck > 0 else channels)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = net(x)
    h, w = net.feature_size(*size)
    assert y.shape == (2, net.out_channels, h, w)
    assert (h, w) == (-(-size[0] // stride), -(-size[1] // stride))
    torch.testing.assert_close(y.norm(dim=1), torch.ones(2, h, w))


def test_paper_configuration_shapes():
    net = FeatureMapNet().eval()  # resnet50, IBN-b, layer3, neck 128
    assert (net.arch, net.ibn, net.final_layer, net.neck) == ("resnet50", "b", "layer3", 128)
    assert net.feature_size(384, 128) == (24, 8)
    assert FeatureMapNet(neck=0).out_channels == 1024
    conv = net.neck_conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) == (1024, 128, (3, 3), (1, 1))
    assert conv.bias is not None
    with torch.no_grad():
        y = net(torch.rand(1, 3, 64, 32))
    assert y.shape == (1, 128, 4, 2)


@pytest.mark.parametrize(("final_layer", "size"), [("layer2", (48, 16)), ("layer3", (24, 8)), ("layer4", (12, 4))])
def test_feature_size_of_the_paper_input(final_layer, size):
    assert FeatureMapNet("resnet18", None, final_layer, neck=0).feature_size(384, 128) == size


def test_no_input_normalisation_and_no_later_stage():
    torch.manual_seed(0)
    net = FeatureMapNet("resnet18", ibn="a", final_layer="layer3", neck=8).eval()
    assert not hasattr(net.base, "layer4") and not hasattr(net.base, "fc")
    assert not any(k.startswith(("base.layer4.", "base.fc.")) for k in net.state_dict())
    x = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        manual = net.base.conv1(x)  # the raw [0, 1] input goes straight into conv1
        for name in ("bn1", "relu", "maxpool", "layer1", "layer2", "layer3"):
            manual = getattr(net.base, name)(manual)
        torch.testing.assert_close(net(x), F.normalize(net.neck_conv(manual), dim=1))


def test_neck_is_skipped_for_nonpositive_neck():
    net = FeatureMapNet("resnet18", ibn=None, neck=0)
    assert net.neck_conv is None
    assert not any(k.startswith("neck_conv.") for k in net.state_dict())


def test_published_checkpoint_keys_load():
    # The published code keeps the whole hub backbone under `base`, so its checkpoints also hold layer4 and fc.
    torch.manual_seed(1)
    full = build_resnet(18, "b")
    neck = torch.nn.Conv2d(256, 32, 3, padding=1)
    state = {f"base.{k}": v for k, v in full.state_dict().items()}
    state.update({f"neck_conv.{k}": v for k, v in neck.state_dict().items()})
    net = FeatureMapNet("resnet18", ibn="b", final_layer="layer3", neck=32)
    result = net.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    torch.testing.assert_close(net.base.layer3[1].conv2.weight, full.layer3[1].conv2.weight)
    torch.testing.assert_close(net.neck_conv.bias, neck.bias)


def test_train_mode_runs_and_backpropagates():
    net = FeatureMapNet("resnet18", ibn="b", final_layer="layer3", neck=8).train()
    y = net(torch.rand(2, 3, 64, 32))
    y.sum().backward()
    assert net.neck_conv.weight.grad is not None
    assert net.base.conv1.weight.grad is not None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"final_layer": "layer1"}, "final_layer"),
        ({"final_layer": "layer5"}, "final_layer"),
        ({"arch": "resnet152", "ibn": "b"}, "resnet152"),
        ({"arch": "resnet21"}, "unknown backbone"),
        ({"ibn": "c"}, "ibn must be"),
    ],
)
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(QAConvError, match=match):
        FeatureMapNet(**kwargs)
