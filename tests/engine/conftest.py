"""Shared by the engine tests: a tiny training configuration on the two small synthetic sets (`synth`), a set
that a tiny network learns in seconds (`easy_set`), and the commands' tests' run stopped after 2 epochs
(`stopped_run`)."""

import numpy as np
import pytest
from PIL import Image

from qaconv.config import TrainConfig, config_from_dict
from tests.commands.conftest import stopped_run

__all__ = ["stopped_run"]


@pytest.fixture(scope="session")
def easy_set(tmp_path_factory):
    """A Market-style training folder of 16 identities, each a noisy solid colour in 6 images from 2 cameras:
    a tiny network separates them within a few epochs, so a run's accuracy climbs."""
    root = tmp_path_factory.mktemp("easy")
    (root / "bounding_box_train").mkdir()
    rng = np.random.default_rng(0)
    for pid in range(1, 17):
        colour = rng.integers(0, 256, 3)
        for i in range(6):
            pixels = np.clip(colour + rng.normal(0, 20, (32, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / "bounding_box_train" / f"{pid:04d}_c{1 + i % 2}s1_{i:06d}_00.png")
    return root


def learning_config(easy_set, **overrides) -> TrainConfig:
    """The from-scratch recipe's choices on `easy_set`, full epochs (12 batches of 8), no occlusion."""
    values = dict(dataset=str(easy_set), freeze_bn=False, backbone_lr_mult=1.0, logit_scale_floor=1.0,
                  warmup_loss="pairwise", lr=0.02, max_iters_per_epoch=0, max_size=0)  # fmt: skip
    return tiny_config(easy_set, **{**values, **overrides})


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
