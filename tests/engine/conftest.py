"""Shared by the engine tests: two small synthetic data sets and a tiny training configuration."""

import pytest

from qaconv.config import TrainConfig, config_from_dict
from qaconv.data.synthetic import generate


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate(root / "A", num_ids=16, num_cams=3, seed=0, style="A", images_per_id=6, height=64, width=32, workers=1)
    generate(root / "B", num_ids=12, num_cams=3, seed=1, style="B", images_per_id=6, height=64, width=32, workers=1)
    return root


def tiny_config(synth, **overrides) -> TrainConfig:
    values = dict(
        dataset=str(synth / "A"),
        testsets=[],
        workers=0,
        arch="resnet18",
        ibn="b",
        final_layer="layer2",
        neck=8,
        height=32,
        width=16,
        pretrained=None,
        batch_size=8,
        num_instances=2,
        lr=0.01,
        max_epochs=3,
        step_factor=2,
        max_iters_per_epoch=3,
        eval_batch=16,
        device="cpu",
    )
    values.update(overrides)
    return config_from_dict(TrainConfig, values)
