"""Run configuration: dataclasses with YAML load/save and command-line overrides.

`ModelConfig` describes the network and input size (stored in every checkpoint, so a run folder
rebuilds its model). `TrainConfig` holds every training and evaluation option; each field is a
YAML key and a `--flag` of `qaconv train` (underscores become dashes).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from qaconv.errors import QAConvError


@dataclass
class ModelConfig:
    """The feature-map network and its input size; defaults are the paper's (QAConv 2.1)."""

    arch: str = "resnet50"
    ibn: str | None = "b"
    final_layer: str = "layer3"
    neck: int = 128
    height: int = 384
    width: int = 128


@dataclass
class TrainConfig:
    """Every option of `qaconv train`; defaults reproduce QAConv 2.1 (SPEC 1.6-1.8)."""

    # data
    dataset: str = "market1501"
    data_dir: str = "data"
    combine_all: bool = False
    testsets: list[str] = field(default_factory=lambda: ["cuhk03_np_detected", "msmt17"])
    workers: int = 4
    # model
    arch: str = "resnet50"
    ibn: str | None = "b"
    final_layer: str = "layer3"
    neck: int = 128
    height: int = 384
    width: int = 128
    pretrained: str | None = "imagenet"
    # sampling and loss
    sampler: str = "gs"
    batch_size: int = 64
    num_instances: int = 2
    loss: str = "triplet"
    margin: float = 16.0
    # optimisation
    lr: float = 0.005
    backbone_lr_mult: float = 0.1
    matcher_lr_mult: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    clip_value: float = 8.0
    step_factor: float = 0.7
    max_epochs: int = 60
    max_iters_per_epoch: int = 0
    accumulate: int = 1
    freeze_bn: bool = True
    # augmentation
    min_size: float = 0.0
    max_size: float = 0.8
    # runtime
    device: str = "auto"
    amp: str = "auto"
    seed: int = 0
    deterministic: bool = False
    # evaluation
    eval_batch: int = 64
    prob_block: int = 256
    gal_block: int = 4096
    eval_dtype: str = "auto"
    rerank: bool = False
    tlift: bool = False

    def model_config(self) -> ModelConfig:
        return ModelConfig(**{f.name: getattr(self, f.name) for f in fields(ModelConfig)})


def config_to_dict(config: Any) -> dict[str, Any]:
    return asdict(config)


def config_from_dict(cls: type, values: dict[str, Any], source: str = "config") -> Any:
    """Build a config dataclass from a mapping; unknown keys are an error that lists the valid ones."""
    if not isinstance(values, dict):
        raise QAConvError(f"{source}: expected a mapping of option names to values, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise QAConvError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}")
    return dataclasses.replace(cls(), **values)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


def load_config(cls: type, path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise QAConvError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise QAConvError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    return config_from_dict(cls, values, source=str(path))
