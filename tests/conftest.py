"""Shared test helpers: the reference fixtures of the published implementations."""

from pathlib import Path

import numpy as np
import pytest
import torch

REFERENCE_DIR = Path(__file__).parent / "fixtures" / "reference"


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests run beside each other on small machines: keep torch to two threads."""
    torch.set_num_threads(min(2, torch.get_num_threads()))


def load_reference(name: str) -> dict[str, np.ndarray]:
    """The arrays of tests/fixtures/reference/<name>."""
    with np.load(REFERENCE_DIR / name) as data:
        return {key: data[key] for key in data.files}
