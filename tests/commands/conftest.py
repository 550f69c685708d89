"""The commands' tests share the inference tests' tiny model, synthetic data and gallery; `qaconv train`'s tests
(and the engine's resume test) share a tiny training command line and a run stopped after 2 epochs."""

import pytest

from qaconv.cli import main
from tests.inference.conftest import (
    checkpoint,
    gallery,
    gallery_dir,
    gallery_images,
    index,
    nan_checkpoint,
    other_checkpoint,
    query_images,
    reid,
    synthetic,
)

__all__ = [
    "checkpoint",
    "gallery",
    "gallery_dir",
    "gallery_images",
    "index",
    "nan_checkpoint",
    "other_checkpoint",
    "query_images",
    "reid",
    "synthetic",
]


def train_args(synth, out, *extra):
    args = ["train", "--out", str(out), "--dataset", str(synth / "A"), "--testsets", str(synth / "B")]
    args += ["--arch", "resnet18", "--final-layer", "layer2", "--neck", "8", "--height", "32", "--width", "16"]
    args += ["--pretrained", "none", "--batch-size", "8", "--max-epochs", "2", "--max-iters-per-epoch", "2"]
    return [*args, "--workers", "0", "--device", "cpu", *extra]


@pytest.fixture
def stopped_run(synth, tmp_path):
    """A run that trained 2 of its epochs (a fixed schedule: the decay comes after epoch 4), then stopped."""
    out = tmp_path / "run"
    assert main(train_args(synth, out, "--testsets", "", "--step-factor", "4", "--max-epochs", "2")) == 0
    return out
