"""ResNet-18/34/50/101/152 and IBN-Net a/b in plain torch.

The module names follow torchvision's `resnet*` and the IBN-Net authors' `resnet*_ibn_a` / `resnet*_ibn_b`
(XingangPan/IBN-Net), so the public ImageNet checkpoints load with `load_state_dict` as they are:

- torchvision ResNet ("v1.5"): the stride of a down-sampling bottleneck sits on its 3x3 conv.
- IBN-a (`ibn_cfg = ('a', 'a', 'a', None)`): in every block of layer1..layer3, `bn1` becomes an `IBN` module:
  InstanceNorm2d(affine) over the first half of the channels (`bn1.IN`) and BatchNorm2d over the rest (`bn1.BN`).
- IBN-b (`ibn_cfg = ('b', 'b', None, None)`): the stem `bn1` is InstanceNorm2d(64, affine), and the last block of
  layer1 and of layer2 applies InstanceNorm2d(affine) (`IN`) after the residual add, before the ReLU.
"""

from __future__ import annotations

import torch
from torch import nn

from qaconv.errors import QAConvError

__all__ = [
    "IBN",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "build_resnet",
    "parse_arch",
    "normalize_ibn",
    "model_name",
    "STAGES",
    "DEPTHS",
]

#: The stages of a ResNet in forward order; the body stages are `layer1`..`layer4`.
STAGES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
LAYERS = ("layer1", "layer2", "layer3", "layer4")


class IBN(nn.Module):
    """Instance-Batch Normalisation (IBN-a): InstanceNorm2d(affine) on the first `int(planes * ratio)` channels,
    BatchNorm2d on the rest, concatenated back in channel order."""

    def __init__(self, planes: int, ratio: float = 0.5):
        super().__init__()
        self.half = int(planes * ratio)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, rest = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat((self.IN(first.contiguous()), self.BN(rest.contiguous())), dim=1)


def _norm1(planes: int, ibn_a: bool) -> nn.Module:
    return IBN(planes) if ibn_a else nn.BatchNorm2d(planes)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34). `ibn_a`: `bn1` is an IBN module; `in_after_add`: IN after the residual add."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        ibn_a: bool = False,
        in_after_add: bool = False,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm1(planes, ibn_a)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.IN = nn.InstanceNorm2d(planes, affine=True) if in_after_add else None
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + identity
        if self.IN is not None:
            out = self.IN(out)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (carries the stride) -> 1x1 bottleneck (ResNet-50/101/152); IBN options as in BasicBlock."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        ibn_a: bool = False,
        in_after_add: bool = False,
    ):
        super().__init__()
        width = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _norm1(planes, ibn_a)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.IN = nn.InstanceNorm2d(width, affine=True) if in_after_add else None
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = out + identity
        if self.IN is not None:
            out = self.IN(out)
        return self.relu(out)


def _drop_removed_keys(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
    """load_state_dict pre-hook: ignore the keys of stages that ResNet.truncate() removed."""
    for name in module._dropped:
        head = f"{prefix}{name}."
        for key in [k for k in state_dict if k.startswith(head)]:
            del state_dict[key]


#: depth -> (block type, blocks per stage)
DEPTHS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}

#: ibn variant -> per-stage setting, as in IBN-Net's `ibn_cfg`.
IBN_CFG: dict[str | None, tuple[str | None, ...]] = {
    None: (None, None, None, None),
    "a": ("a", "a", "a", None),
    "b": ("b", "b", None, None),
}


class ResNet(nn.Module):
    """A ResNet whose children are, in order, conv1, bn1, relu, maxpool, layer1..layer4 and (with a classifier)
    avgpool and fc. `truncate(final_layer)` removes what follows `final_layer`."""

    def __init__(
        self,
        block: type[nn.Module],
        layers: tuple[int, int, int, int],
        ibn: str | None = None,
        num_classes: int = 1000,
    ):
        super().__init__()
        ibn = normalize_ibn(ibn)
        cfg = IBN_CFG[ibn]
        self.depth = None  # set by build_resnet
        self.ibn = ibn
        self.block = block
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.InstanceNorm2d(64, affine=True) if cfg[0] == "b" else nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, cfg[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2, cfg[1])
        self.layer3 = self._make_layer(block, 256, layers[2], 2, cfg[2])
        self.layer4 = self._make_layer(block, 512, layers[3], 2, cfg[3])
        if num_classes > 0:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512 * block.expansion, num_classes)
        self._dropped: tuple[str, ...] = ()
        self._register_load_state_dict_pre_hook(_drop_removed_keys, with_module=True)
        self._init_weights()

    def _make_layer(self, block, planes: int, blocks: int, stride: int, ibn: str | None) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        seq = []
        for i in range(blocks):
            seq.append(
                block(
                    self.inplanes,
                    planes,
                    stride if i == 0 else 1,
                    downsample if i == 0 else None,
                    ibn_a=ibn == "a",
                    in_after_add=ibn == "b" and i == blocks - 1,
                )
            )
            self.inplanes = planes * block.expansion
        return nn.Sequential(*seq)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ structure
    def stage_channels(self, layer: str) -> int:
        """Channels at the output of `layer` (layer1..layer4)."""
        if layer not in LAYERS:
            raise QAConvError(f"unknown ResNet stage {layer!r}; choose one of {', '.join(LAYERS)}")
        return 64 * 2 ** LAYERS.index(layer) * self.block.expansion

    def truncate(self, final_layer: str) -> ResNet:
        """Remove every stage after `final_layer` (and avgpool/fc). The removed stages' keys in a state dict
        given to `load_state_dict` are then ignored, so full checkpoints still load. Returns self."""
        if final_layer not in LAYERS:
            raise QAConvError(f"final_layer must be one of {', '.join(LAYERS)}, got {final_layer!r}")
        names = list(self._modules)
        drop = names[names.index(final_layer) + 1 :]
        for name in drop:
            delattr(self, name)
        self._dropped = tuple(sorted(set(self._dropped) | set(drop)))
        return self

    # ------------------------------------------------------------------ forward
    def forward_features(self, x: torch.Tensor, final_layer: str | None = None) -> torch.Tensor:
        """Run the stem and the body up to and including `final_layer` (default: the last stage present)."""
        for name in STAGES:
            module = self._modules.get(name)
            if module is None:
                break
            x = module(x)
            if name == final_layer:
                break
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits when the classifier is present, else the last feature map."""
        x = self.forward_features(x)
        if getattr(self, "fc", None) is None:
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))


def normalize_ibn(ibn: str | None) -> str | None:
    """None/'none'/'' -> None; 'a'/'b' (any case) -> 'a'/'b'; anything else is an error."""
    if ibn is None:
        return None
    if isinstance(ibn, str):
        value = ibn.strip().lower()
        if value in ("", "none"):
            return None
        if value in ("a", "b"):
            return value
    raise QAConvError(f"ibn must be None, 'a' or 'b', got {ibn!r}")


def parse_arch(arch: int | str) -> int:
    """50, '50', 'resnet50' -> 50; an unsupported depth is an error naming the supported ones."""
    text = str(arch).strip().lower()
    text = text[len("resnet") :] if text.startswith("resnet") else text
    if text.isdigit() and int(text) in DEPTHS:
        return int(text)
    supported = ", ".join(f"resnet{d}" for d in DEPTHS)
    raise QAConvError(f"unknown backbone {arch!r}; choose one of {supported}")


def model_name(depth: int | str, ibn: str | None = None) -> str:
    """Public model name: 'resnet50', 'resnet50_ibn_b', ..."""
    depth, ibn = parse_arch(depth), normalize_ibn(ibn)
    return f"resnet{depth}" if ibn is None else f"resnet{depth}_ibn_{ibn}"


def build_resnet(depth: int | str, ibn: str | None = None, num_classes: int = 1000) -> ResNet:
    """ResNet-`depth` (18, 34, 50, 101, 152) with IBN-Net variant `ibn` (None, 'a' or 'b'), randomly initialised.

    Its state-dict keys and shapes equal those of torchvision's `resnet<depth>` (ibn=None) or of IBN-Net's
    `resnet<depth>_ibn_<ibn>` ImageNet checkpoints. `num_classes=0` leaves out avgpool and fc.
    IBN-Net has no ResNet-152 weights, so ResNet-152 with IBN is refused.
    """
    depth, ibn = parse_arch(depth), normalize_ibn(ibn)
    if depth == 152 and ibn is not None:
        raise QAConvError(
            f"IBN-{ibn} is not available for resnet152 (IBN-Net published no ResNet-152 weights); use ibn=None"
        )
    block, layers = DEPTHS[depth]
    model = ResNet(block, layers, ibn=ibn, num_classes=num_classes)
    model.depth = depth
    return model
