"""The training guard: a collapse and a divergence stop a tiny run with a one-line error; a learning run goes on."""

import re

import pytest
import torch

from qaconv.config import recipe_config
from qaconv.data.synthetic import SynthConfig, generate
from qaconv.engine.assemble import build_trainer
from qaconv.errors import QAConvError


@pytest.fixture(scope="module")
def many_classes(tmp_path_factory):
    """64 training identities: enough for graph-sampled batches of 16 classes to be mostly hard."""
    root = tmp_path_factory.mktemp("guard")
    generate(
        root / "L",
        SynthConfig(num_ids=128, num_cams=3, seed=0, style="A", images_per_id=4, height=64, width=32),
        workers=1,
    )
    return root / "L"


def config(data, **options):
    values = dict(
        dataset=str(data), testsets=[], workers=0, arch="resnet18", ibn="b", final_layer="layer2", neck=16,
        height=32, width=16, pretrained=None, batch_size=32, num_instances=2, sampler="gs", lr=0.02,
        max_epochs=1, max_iters_per_epoch=60, collapse_patience=20, device="cpu", gs_warmup=0,
    )  # fmt: skip
    return recipe_config({**values, **options})


def test_the_paper_recipe_from_random_weights_collapses_and_is_stopped(many_classes):
    """From random weights the batch-hard loss drives the logit scale to 0: the guard stops the run and says why."""
    trainer = build_trainer(config(many_classes, recipe="paper"), None, quiet=True)
    with pytest.raises(QAConvError, match=r"training collapsed \(epoch 1, iteration \d+\).*--recipe scratch") as err:
        trainer.train_epoch(1)
    assert "\n" not in str(err.value)
    assert abs(float(trainer.matcher.logit_bn.weight.detach())) < 0.1


def test_the_scratch_recipe_keeps_learning_on_the_same_run(many_classes):
    trainer = build_trainer(config(many_classes), None, quiet=True)
    assert trainer.logit_scale_floor == 1.0
    stats = trainer.train_epoch(1)
    assert stats["batches"] == 60
    assert float(trainer.matcher.logit_bn.weight.detach()) >= 1.0


def test_non_finite_weights_stop_the_run_before_any_checkpoint(many_classes, tmp_path, monkeypatch):
    trainer = build_trainer(config(many_classes, max_epochs=2, max_iters_per_epoch=12), tmp_path, quiet=True)
    real_step = trainer.optimizer.step

    def poisoned_step(*args, **kwargs):
        result = real_step(*args, **kwargs)
        if trainer.iteration == 15:  # epoch 2, after epoch 1 was checkpointed
            with torch.no_grad():
                trainer.model.neck_conv.weight[0, 0, 0, 0] = float("nan")
        return result

    monkeypatch.setattr(trainer.optimizer, "step", poisoned_step)
    with pytest.raises(QAConvError, match=r"training diverged \(epoch 2, iteration \d+\): the weights are no longer"):
        trainer.fit()
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lr": float("nan")}, "--lr must be a finite number, got nan"),
        ({"lr": 1e9}, "--lr must be at most 1, got 1e+09"),
        ({"lr": "fast"}, "--lr: expected a number, got 'fast'"),
        ({"weight_decay": -1}, "--weight-decay must be at least 0, got -1"),
        ({"batch_size": 2}, "holds one class, so no negatives"),
    ],
)
def test_absurd_options_are_refused_before_any_work(many_classes, options, message):
    with pytest.raises(QAConvError, match=re.escape(message)):
        config(many_classes, **options)


@pytest.fixture(scope="module")
def learned_start(many_classes, tmp_path_factory):
    """A qaconv run folder trained a little with the scratch recipe on P x K batches: a warm start that is not
    an ImageNet backbone, as users without ImageNet weights make one."""
    run = tmp_path_factory.mktemp("start")
    build_trainer(config(many_classes, sampler="pk", max_iters_per_epoch=40), run, quiet=True).fit()
    return run


def test_a_warm_start_from_a_qaconv_run_trains_with_graph_sampling_without_collapsing(many_classes, learned_start):
    warm = config(many_classes, init_from=str(learned_start), pretrained=None, recipe="auto", lr=0.005)
    assert (warm.recipe, warm.optimization.logit_scale_floor, warm.sampler.warmup_epochs) == ("warm", 1.0, 0)
    trainer = build_trainer(warm, None, quiet=True)
    stats = trainer.train_epoch(1)  # 60 graph-sampled batches, past the guard's 20-iteration patience
    assert stats["sampling"] == "graph" and stats["batches"] == 60
    assert float(trainer.matcher.logit_bn.weight.detach()) >= 1.0


def test_the_paper_recipe_from_the_same_warm_start_collapses_with_graph_sampling(many_classes, learned_start):
    paper = config(many_classes, init_from=str(learned_start), pretrained=None, recipe="paper", lr=0.005)
    trainer = build_trainer(paper, None, quiet=True)
    with pytest.raises(QAConvError, match=r"training collapsed \(epoch 1"):
        trainer.train_epoch(1)
