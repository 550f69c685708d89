"""Checkpoints: atomic writes, run folders, and rebuilding the model and matcher from a file.

A qaconv checkpoint is a dict with `format`, `model_config` (see `qaconv.config.ModelConfig`),
`model` and `matcher` state dicts, and, for training runs, the optimizer/schedule/sampler/RNG
state needed to resume. The published code's `checkpoint.pth.tar` (keys `model` with `base.*` /
`neck_conv.*` and `criterion` with `matcher.*`) is imported by `import_published_checkpoint`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qaconv.checksum import verify
from qaconv.config import ModelConfig
from qaconv.errors import QAConvError
from qaconv.folders import EVALUATION, RUN, expect_kind
from qaconv.io import atomic_torch_save
from qaconv.matching import QAConv
from qaconv.models import FeatureMapNet
from qaconv.rundir import CHECKPOINT

FORMAT = "qaconv-checkpoint/1"


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write `payload` with torch.save atomically (`qaconv.io.atomic_torch_save`): a crash or Ctrl-C during
    the write leaves the previous checkpoint intact; a failed write (a full disk) is a one-line error."""
    return atomic_torch_save(payload, path)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the last checkpoint of a run folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        expect_kind(path, "checkpoint", [RUN, EVALUATION], "a run folder or a checkpoint file")
        path = path / CHECKPOINT
        if not path.is_file():
            raise QAConvError(f"no {CHECKPOINT} in run folder {path.parent} (is it a qaconv run folder?)")
    elif not path.is_file():
        raise QAConvError(f"checkpoint not found: {path}")
    return path


def _load_file(path: Path, source: str) -> Any:
    """torch.load a checkpoint file onto the CPU after checking its sha256 checksum (`qaconv.checksum`;
    files saved without one load unchecked); `source` names it in errors."""
    try:
        verify(path)
        return torch.load(path, map_location="cpu", weights_only=False)
    except QAConvError:
        raise
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:200]  # torch adds paragraphs of advice
        raise QAConvError(f"{source} is not a readable checkpoint ({type(exc).__name__}: {reason})") from exc


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a qaconv checkpoint onto the CPU, checking its checksum and the keys a checkpoint must have."""
    path = resolve_checkpoint(path)
    payload = _load_file(path, str(path))
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        keys = ", ".join(sorted(map(str, payload))[:6]) if isinstance(payload, dict) else type(payload).__name__
        hint = " (a published-code checkpoint? use --init-from to import it)" if _is_published(payload) else ""
        raise QAConvError(f"{path} is not a qaconv checkpoint: it has {keys}{hint}")
    missing = [k for k in ("model_config", "model", "matcher") if k not in payload]
    if missing:
        raise QAConvError(f"{path} is missing the key(s) {', '.join(missing)}")
    return payload


def model_payload(model: FeatureMapNet, matcher: QAConv, model_config: ModelConfig, **extra: Any) -> dict[str, Any]:
    """The part of a checkpoint that rebuilds the network: format, model config and both state dicts."""
    return {
        "format": FORMAT,
        "model_config": dataclasses.asdict(model_config),
        "model": _unwrap(model).state_dict(),
        "matcher": _unwrap(matcher).state_dict(),
        **extra,
    }


def state_fingerprint(model: nn.Module, matcher: nn.Module, config: ModelConfig | None = None) -> str:
    """sha256 (hex) of the model config (when given) and the names, dtypes, shapes and bytes of every
    weight and buffer: identifies "this model" for feature caches and gallery indexes."""
    digest = hashlib.sha256()
    if config is not None:
        digest.update(json.dumps(dataclasses.asdict(config), sort_keys=True).encode())
    for prefix, module in (("model.", _unwrap(model)), ("matcher.", _unwrap(matcher))):
        for name, tensor in sorted(module.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{prefix}{name}|{t.dtype}|{list(t.shape)}|".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def build_model(config: ModelConfig, pretrained: str | None = None) -> tuple[FeatureMapNet, QAConv]:
    """A feature-map network and a QAConv matcher sized for its feature maps."""
    model = FeatureMapNet(config.arch, config.ibn, config.final_layer, config.neck, pretrained=pretrained)
    height, width = model.feature_size(config.height, config.width)
    return model, QAConv(model.out_channels, height, width)


def load_state(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict that names missing/unexpected keys and shape mismatches in one line."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise QAConvError(f"{what} does not fit: missing keys {missing[:4]}, unexpected keys {unexpected[:4]}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise QAConvError(
                f"{what} does not fit: {key} has shape {list(value.shape)} in the checkpoint "
                f"but {list(own[key].shape)} in the model"
            )
    module.load_state_dict(state)


def load_model(path: str | Path, device: torch.device | str | None = None) -> tuple[FeatureMapNet, QAConv, ModelConfig]:
    """Rebuild (model, matcher, model config) from a checkpoint file or run folder, in eval mode."""
    payload = read_checkpoint(path)
    source = str(resolve_checkpoint(path))
    try:
        config = ModelConfig(**payload["model_config"])
    except TypeError as exc:
        raise QAConvError(f"{source}: bad model_config ({exc})") from exc
    model, matcher = build_model(config)
    load_state(model, payload["model"], f"{source} model")
    load_state(matcher, payload["matcher"], f"{source} matcher")
    check_compatible(model, matcher, config, source)
    check_finite(model, matcher, source)
    return model.to(device or "cpu").eval(), matcher.to(device or "cpu").eval(), config


def check_compatible(model: FeatureMapNet, matcher: QAConv, config: ModelConfig, source: str) -> None:
    """The model's feature maps must have the matcher's channels and size."""
    feature = (model.out_channels, *model.feature_size(config.height, config.width))
    expected = (matcher.num_features, matcher.height, matcher.width)
    if feature != expected:
        raise QAConvError(
            f"{source}: the model makes feature maps of C, H, W = {feature} but the matcher expects {expected}"
        )


def check_finite(model: nn.Module, matcher: nn.Module, source: str) -> None:
    """Refuse weights or statistics that are NaN or infinite (a diverged training): they give NaN scores."""
    for prefix, module in (("model.", model), ("matcher.", matcher)):
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise QAConvError(
                    f"{source} holds non-finite weights (NaN or inf, first in {prefix}{name}): the training "
                    "diverged; use an earlier checkpoint"
                )


def _is_published(payload: Any) -> bool:
    return isinstance(payload, dict) and "model" in payload and "criterion" in payload


def import_published_checkpoint(payload: dict[str, Any], model: FeatureMapNet, matcher: QAConv, source: str) -> None:
    """Load the published code's `checkpoint.pth.tar` (model: base.* / neck_conv.*, criterion: matcher.*)."""
    model_state = {k.removeprefix("module."): v for k, v in payload["model"].items()}
    own = model.state_dict()
    # Stages after final_layer are not part of the model; the published checkpoint holds the whole ResNet.
    model_state = {k: v for k, v in model_state.items() if k in own or not k.startswith("base.")}
    matcher_state = {k.removeprefix("matcher."): v for k, v in payload["criterion"].items() if k.startswith("matcher.")}
    load_state(model, model_state, f"{source} model")
    load_state(matcher, matcher_state, f"{source} criterion.matcher")


def load_initial_weights(path: str | Path, model: FeatureMapNet, matcher: QAConv, config: ModelConfig) -> None:
    """A warm start (--init-from): the weights of a qaconv run folder or checkpoint, or of the published
    code's checkpoint.pth.tar, into a model built for `config` (only the weights: no optimizer or schedule)."""
    path = Path(path).expanduser()
    source = f"--init-from {path}"
    if path.is_dir():
        path = path / CHECKPOINT
        if not path.is_file():
            raise QAConvError(f"{source}: no {CHECKPOINT} in that folder (is it a qaconv run folder?)")
    elif not path.is_file():
        raise QAConvError(f"{source}: checkpoint not found")
    payload = _load_file(path, source)
    if _is_published(payload):
        import_published_checkpoint(payload, model, matcher, source)
    elif isinstance(payload, dict) and payload.get("format") == FORMAT:
        stored = payload.get("model_config") or {}
        differ = {k: (stored.get(k), v) for k, v in dataclasses.asdict(config).items() if stored.get(k) != v}
        if differ:
            details = ", ".join(f"{k} {a!r} there, {b!r} here" for k, (a, b) in differ.items())
            raise QAConvError(f"{source}: that model is not this one ({details})")
        load_state(model, payload["model"], f"{source} model")
        load_state(matcher, payload["matcher"], f"{source} matcher")
    else:
        keys = ", ".join(sorted(map(str, payload))[:6]) if isinstance(payload, dict) else type(payload).__name__
        raise QAConvError(
            f"{source}: neither a qaconv checkpoint nor the published code's checkpoint.pth.tar (it has {keys})"
        )


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, "module") else module
