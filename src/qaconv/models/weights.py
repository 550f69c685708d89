"""ImageNet weights for the backbones: from a file, or from the torch hub cache by the public file name.

Nothing is downloaded unless `download=True` is passed. Without it, a missing file is a one-line error that
names the file, the folder to put it in and the URL it comes from.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from qaconv.errors import QAConvError
from qaconv.models.resnet import model_name

__all__ = [
    "PUBLIC_CHECKPOINTS",
    "LEGACY_FILE_NAMES",
    "hub_checkpoint_dir",
    "find_imagenet_checkpoint",
    "read_state_dict",
    "check_state_dict",
    "load_pretrained",
]

_TV = "https://download.pytorch.org/models/"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # torch colours parts of its messages
_IBN = "https://github.com/XingangPan/IBN-Net/releases/download/v1.0/"

#: model name -> (file name, URL) of the public ImageNet checkpoint (torchvision IMAGENET1K_V1, IBN-Net v1.0).
PUBLIC_CHECKPOINTS: dict[str, tuple[str, str]] = {
    name: (file, base + file)
    for name, file, base in [
        ("resnet18", "resnet18-f37072fd.pth", _TV),
        ("resnet34", "resnet34-b627a593.pth", _TV),
        ("resnet50", "resnet50-0676ba61.pth", _TV),
        ("resnet101", "resnet101-63fe2227.pth", _TV),
        ("resnet152", "resnet152-394f9c45.pth", _TV),
        ("resnet18_ibn_a", "resnet18_ibn_a-2f571257.pth", _IBN),
        ("resnet34_ibn_a", "resnet34_ibn_a-94bc1577.pth", _IBN),
        ("resnet50_ibn_a", "resnet50_ibn_a-d9d0bb7b.pth", _IBN),
        ("resnet101_ibn_a", "resnet101_ibn_a-59ea0ac6.pth", _IBN),
        ("resnet18_ibn_b", "resnet18_ibn_b-bc2f3c11.pth", _IBN),
        ("resnet34_ibn_b", "resnet34_ibn_b-04134c37.pth", _IBN),
        ("resnet50_ibn_b", "resnet50_ibn_b-9ca61e85.pth", _IBN),
        ("resnet101_ibn_b", "resnet101_ibn_b-c55f6dba.pth", _IBN),
    ]
}

#: File names under which older torchvision releases saved the same V1 ImageNet weights; a hub cache
#: filled by an older torchvision holds these. They are looked for after the current name.
LEGACY_FILE_NAMES: dict[str, tuple[str, ...]] = {
    "resnet18": ("resnet18-5c106cde.pth",),
    "resnet34": ("resnet34-333f7ec4.pth",),
    "resnet50": ("resnet50-19c8e357.pth",),
    "resnet101": ("resnet101-5d3b4d8f.pth",),
    "resnet152": ("resnet152-b121ed2d.pth",),
}


def hub_checkpoint_dir() -> Path:
    """`torch.hub.get_dir()/checkpoints`, where torch.hub keeps downloaded weights (honours TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_imagenet_checkpoint(name: str, download: bool = False) -> Path:
    """Path of the public ImageNet checkpoint for model `name` (e.g. 'resnet50_ibn_b') in the hub cache.

    Absent and `download=False`: a QAConvError says where to put which file, and its URL.
    Absent and `download=True`: the file is downloaded there first.
    """
    if name not in PUBLIC_CHECKPOINTS:
        raise QAConvError(f"no public ImageNet weights for {name}; choose one of {', '.join(PUBLIC_CHECKPOINTS)}")
    file, url = PUBLIC_CHECKPOINTS[name]
    folder = hub_checkpoint_dir()
    for candidate in (file, *LEGACY_FILE_NAMES.get(name, ())):
        if (folder / candidate).is_file():
            return folder / candidate
    target = folder / file
    if not download:
        raise QAConvError(
            f"ImageNet weights for {name} not found: put {file} (from {url}) into {folder}{os.sep} or give the "
            f"file's path (--pretrained FILE), or train from random weights (--pretrained none); in Python, "
            f"download=True fetches the file"
        )
    folder.mkdir(parents=True, exist_ok=True)
    # torchvision's file names carry a SHA-256 prefix that torch.hub can check; IBN-Net's are not documented as such.
    hash_prefix = file.rsplit("-", 1)[1].split(".")[0] if url.startswith(_TV) else None
    try:
        torch.hub.download_url_to_file(url, str(target), hash_prefix=hash_prefix, progress=True)
    except Exception as exc:  # network errors come in many types
        raise QAConvError(f"could not download {url} to {target}: {exc}") from exc
    return target


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict (name -> tensor) from a checkpoint file on the CPU.

    A `{'state_dict': ...}` wrapper and a `module.` prefix on every key (DataParallel) are removed.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise QAConvError(f"pretrained weights file not found: {path}")
    if not path.is_file():
        raise QAConvError(f"pretrained weights path is not a file: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if _is_qaconv_checkpoint(path):
            raise QAConvError(
                f"{path} is a qaconv checkpoint, not backbone weights: to start from that model use --init-from "
                f"{path} (init_from=) instead of --pretrained"
            ) from None
        text = _ANSI.sub("", str(exc)).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise QAConvError(f"{path} is not a readable torch checkpoint of tensors: {first}") from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise QAConvError(f"{path} does not hold a state dict (it holds a {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        shown = ", ".join(map(str, list(obj)[:5]))
        raise QAConvError(f"{path} does not hold a state dict: {bad[0]!r} is not a tensor (top-level keys: {shown})")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _is_qaconv_checkpoint(path: Path) -> bool:
    """Whether `path` is a torch zip archive whose pickle names the qaconv checkpoint format (read without
    unpickling anything)."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickle_name = next((n for n in archive.namelist() if n.endswith("/data.pkl")), None)
            return pickle_name is not None and b"qaconv-checkpoint/" in archive.read(pickle_name)
    except (OSError, zipfile.BadZipFile):
        return False


def _variant_of(keys) -> str:
    """Guess which public model a state dict comes from, for error messages."""
    keys = set(keys)
    if any(".bn1.IN." in k for k in keys):
        return "IBN-a"
    if "bn1.running_mean" not in keys and "bn1.weight" in keys:
        return "IBN-b"
    if "layer1.0.conv3.weight" in keys:
        return "Bottleneck (ResNet-50/101/152) without IBN"
    if "layer1.0.conv2.weight" in keys:
        return "BasicBlock (ResNet-18/34) without IBN"
    return "not a ResNet"


def _few(keys: list[str], n: int = 3) -> str:
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> dict:
    """Return the entries of `state_dict` that `model` takes, after checking that they fit it exactly.

    Classifier keys (`fc.*`) are dropped when the model has no classifier. A missing or unexpected key, or a
    shape mismatch, is a QAConvError naming a few of the keys (and both shapes).
    """
    own = model.state_dict()
    state = dict(state_dict)
    # Stages cut off by ResNet.truncate() are ignored, as load_state_dict ignores them.
    for stage in getattr(model, "_dropped", ()):
        state = {k: v for k, v in state.items() if not k.startswith(stage + ".")}
    if not any(k.startswith("fc.") for k in own):
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) ({_few(unexpected)})")
        raise QAConvError(
            f"{source} does not fit the model: {'; '.join(parts)}; "
            f"the file looks like {_variant_of(state)}, the model is {_variant_of(own)}"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise QAConvError(
                f"{source} does not fit the model: {key} has shape {list(value.shape)} in the file "
                f"but {list(own[key].shape)} in the model"
            )
    return state


def load_pretrained(
    model: nn.Module,
    source: str | os.PathLike | bool,
    *,
    name: str | None = None,
    download: bool = False,
) -> nn.Module:
    """Load weights into a backbone from `source`: a checkpoint path, or 'imagenet' (also True) for the public
    ImageNet checkpoint of model `name` (default: the model's own name, e.g. 'resnet50_ibn_b') from the hub
    cache. Keys and shapes must match exactly (fc.* is optional). Returns the model."""
    if source is True or (isinstance(source, str) and source.strip().lower() == "imagenet"):
        if name is None:
            depth, ibn = getattr(model, "depth", None), getattr(model, "ibn", None)
            if depth is None:
                raise QAConvError("load_pretrained(..., 'imagenet') needs name= for a model without .depth")
            name = model_name(depth, ibn)
        path = find_imagenet_checkpoint(name, download=download)
    elif source is None or source is False:
        return model
    else:
        path = Path(source)
    state = check_state_dict(model, read_state_dict(path), source=str(path))
    model.load_state_dict(state, strict=True)
    return model
