"""Shared helpers for the model tests: the reference fixtures and their deterministic-weights rule."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"


def _deterministic_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The fixture README's rule: one generator per key, seeded with crc32(key), in state-dict order."""
    state = {}
    for key, value in model.state_dict().items():
        shape = value.shape
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            new = value.clone()
        elif key.endswith("running_var"):
            new = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            new = 0.1 * torch.randn(shape, generator=g)
        elif value.dim() == 1 and key.endswith("weight"):
            new = 1 + 0.1 * torch.randn(shape, generator=g)
        elif value.dim() == 1:
            new = 0.1 * torch.randn(shape, generator=g)
        else:
            new = torch.randn(shape, generator=g) * math.sqrt(2 / math.prod(shape[1:]))
        state[key] = new
    return state


@pytest.fixture(scope="session")
def deterministic_state():
    """Function model -> state dict with the fixture README's deterministic weights."""
    return _deterministic_state


@pytest.fixture(scope="session")
def backbone_keys() -> dict[str, dict[str, list[int]]]:
    return json.loads((REFERENCE / "backbone_keys.json").read_text())


@pytest.fixture(scope="session")
def backbone_outputs() -> dict[str, np.ndarray]:
    with np.load(REFERENCE / "backbone_outputs.npz") as data:
        return {name: data[name] for name in data.files}
