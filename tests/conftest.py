"""Shared test helpers: the reference fixtures of the published implementations, and two small synthetic sets."""

from pathlib import Path

import numpy as np
import pytest
import torch

from qaconv.data.synthetic import SynthConfig, generate

REFERENCE_DIR = Path(__file__).parent / "fixtures" / "reference"


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests run beside each other on small machines: keep torch to two threads."""
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """Two small synthetic sets, styles A (16 ids) and B (12 ids), 3 cameras; tests copy them before changing them."""
    root = tmp_path_factory.mktemp("synth")
    generate(
        root / "A",
        SynthConfig(num_ids=16, num_cams=3, seed=0, style="A", images_per_id=6, height=64, width=32),
        workers=1,
    )
    generate(
        root / "B",
        SynthConfig(num_ids=12, num_cams=3, seed=1, style="B", images_per_id=6, height=64, width=32),
        workers=1,
    )
    return root


def load_reference(name: str) -> dict[str, np.ndarray]:
    """The arrays of tests/fixtures/reference/<name>."""
    with np.load(REFERENCE_DIR / name) as data:
        return {key: data[key] for key in data.files}
