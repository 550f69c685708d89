"""The feature-map network: a ResNet cut after layer2/3/4, an optional 3x3 neck conv, then per-location L2 norm.

As in the published QAConv code (`reid/models/resmap.py`), inputs are RGB tensors in [0, 1] and are NOT
mean/std normalised, even though the ImageNet weights were trained with normalisation.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from qaconv.errors import QAConvError
from qaconv.models.resnet import build_resnet, model_name, normalize_ibn, parse_arch
from qaconv.models.weights import load_pretrained

__all__ = ["FeatureMapNet", "FINAL_LAYERS"]

#: Where the backbone may be cut, and the feature stride there.
FINAL_LAYERS = {"layer2": 8, "layer3": 16, "layer4": 32}


def _down(size: int, times: int) -> int:
    # conv1 (7x7, s2, p3), maxpool (3x3, s2, p1) and each stride-2 3x3 conv (p1) map n to floor((n - 1) / 2) + 1.
    for _ in range(times):
        size = (size - 1) // 2 + 1
    return size


class FeatureMapNet(nn.Module):
    """Backbone (`base`) cut after `final_layer` -> optional `neck_conv` -> F.normalize over channels.

    Args:
        arch: 'resnet18', 'resnet34', 'resnet50', 'resnet101' or 'resnet152'.
        ibn: None, 'a' or 'b' (IBN-Net variant; not for resnet152).
        final_layer: 'layer2', 'layer3' or 'layer4' (feature stride 8, 16 or 32).
        neck: output channels of the 3x3 neck conv (bias, default PyTorch init, no BN/ReLU); <= 0 means no neck.
        pretrained: None, a checkpoint path for the backbone, or 'imagenet' for the public ImageNet checkpoint
            found in the torch hub cache by its file name (see qaconv.models.weights).
        download: with pretrained='imagenet', download the checkpoint into the hub cache if it is absent.

    The stages after `final_layer` (and avgpool/fc) are removed from `base`; their keys in a state dict given to
    `load_state_dict` are ignored, so checkpoints of the published code (keys `base.*`, `neck_conv.*`, with the
    whole backbone) load as they are. `forward` returns [B, out_channels, *feature_size(H, W)] with unit L2
    norm over channels at every location.
    """

    def __init__(
        self,
        arch: str = "resnet50",
        ibn: str | None = "b",
        final_layer: str = "layer3",
        neck: int = 128,
        pretrained: str | os.PathLike | None = None,
        download: bool = False,
    ):
        super().__init__()
        depth, ibn = parse_arch(arch), normalize_ibn(ibn)
        if final_layer not in FINAL_LAYERS:
            raise QAConvError(f"final_layer must be one of {', '.join(FINAL_LAYERS)}, got {final_layer!r}")
        self.arch = f"resnet{depth}"
        self.ibn = ibn
        self.final_layer = final_layer
        self.neck = int(neck)
        base = build_resnet(depth, ibn)
        if pretrained is not None and pretrained is not False:
            load_pretrained(base, pretrained, name=model_name(depth, ibn), download=download)
        self.base = base.truncate(final_layer)
        in_channels = base.stage_channels(final_layer)
        if self.neck > 0:
            self.neck_conv = nn.Conv2d(in_channels, self.neck, kernel_size=3, padding=1, bias=True)
            self.out_channels = self.neck
        else:
            self.neck_conv = None
            self.out_channels = in_channels
        self.stride = FINAL_LAYERS[final_layer]

    def feature_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the feature map for an input of height x width (384x128 -> 24x8 at layer3)."""
        times = {8: 3, 16: 4, 32: 5}[self.stride]
        return _down(int(height), times), _down(int(width), times)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.base.forward_features(x, self.final_layer)
        if self.neck_conv is not None:
            x = self.neck_conv(x)
        return F.normalize(x, dim=1)

    def extra_repr(self) -> str:
        return (
            f"arch={self.arch}, ibn={self.ibn}, final_layer={self.final_layer}, neck={self.neck}, "
            f"out_channels={self.out_channels}, stride={self.stride}"
        )
