"""Shared by the engine tests: a tiny training configuration on the two small synthetic sets (`synth`)."""

from qaconv.config import TrainConfig, config_from_dict


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
