"""build_trainer's assembly: the optimizer's groups, the training set's checks, the callbacks and
the parts handed to the Trainer (no training here: nothing is iterated)."""

import pytest
import torch
from PIL import Image

from qaconv.config import TrainConfig, config_from_dict, read_yaml
from qaconv.data.samplers import GraphSampler, PKSampler
from qaconv.engine.assemble import build_callbacks, build_optimizer, build_trainer, open_training_set
from qaconv.engine.callbacks import Checkpointer, ConsoleLog, CurvePlot, MetricsLog, Progress, TensorBoardLog
from qaconv.engine.checkpoint import build_model, model_payload, save_checkpoint
from qaconv.engine.guard import TrainingGuard
from qaconv.errors import QAConvError
from qaconv.losses import PairwiseMatchingLoss, TripletLoss, WarmupLoss
from qaconv.rundir import RunDir

TINY = {"arch": "resnet18", "ibn": None, "final_layer": "layer2", "neck": 8, "height": 32, "width": 16}
TINY |= {"pretrained": None, "device": "cpu", "workers": 0, "testsets": [], "batch_size": 4, "num_instances": 2}


def image_folder(root, pids, split="bounding_box_train"):
    """A Market-style folder with one small image per entry of `pids` (camera 1, 2, 1, 2, ...)."""
    (root / split).mkdir(parents=True)
    for i, pid in enumerate(pids):
        Image.new("RGB", (16, 32), (40 * i % 256, 80, 120)).save(
            root / split / f"{pid:04d}_c{1 + i % 2}s1_{i:06d}_00.jpg"
        )
    return root


def config(**values):
    return config_from_dict(TrainConfig, TINY | values)


def never_called(indices, k):
    raise AssertionError("no epoch is built in these tests")


def test_the_optimizer_gives_backbone_neck_and_matcher_their_own_learning_rates():
    c = config(lr=0.02, backbone_lr_mult=0.1, matcher_lr_mult=2.0, momentum=0.8, weight_decay=1e-4)
    model, matcher = build_model(c.model.network())
    optimizer = build_optimizer(model, matcher, c)
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.002, 0.02, 0.04])
    params = [p for group in optimizer.param_groups for p in group["params"]]
    assert len({id(p) for p in params}) == len(params) == len([*model.parameters(), *matcher.parameters()])
    assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.8
    assert optimizer.defaults["weight_decay"] == 1e-4
    no_neck = config(neck=0, lr=0.02, backbone_lr_mult=0.1, matcher_lr_mult=2.0)
    model, matcher = build_model(no_neck.model.network())
    assert [g["lr"] for g in build_optimizer(model, matcher, no_neck).param_groups] == pytest.approx([0.002, 0.04])


def test_a_training_set_needs_images_of_at_least_two_identities(tmp_path):
    records = open_training_set(config(dataset=str(image_folder(tmp_path / "two", [1, 1, 2, 2]))))
    assert len(records) == 4 and len({r.pid for r in records}) == 2
    one = image_folder(tmp_path / "one", [3, 3, 3])
    with pytest.raises(QAConvError, match=f"data set {one} has only one training identity"):
        open_training_set(config(dataset=str(one)))
    test_only = image_folder(tmp_path / "test_only", [1, 2], split="query")
    with pytest.raises(QAConvError, match=f"data set {test_only} has no training images"):
        open_training_set(config(dataset=str(test_only)))


def test_callbacks_save_before_they_report_and_report_only_when_not_quiet(tmp_path):
    c = config()
    run = RunDir(tmp_path)
    loud = build_callbacks(c, run, c.model.network(), quiet=False)
    assert [type(cb) for cb in loud] == [Checkpointer, MetricsLog, TensorBoardLog, CurvePlot, ConsoleLog, Progress]
    quiet = build_callbacks(c, run, c.model.network(), quiet=True)
    assert [type(cb) for cb in quiet] == [Checkpointer, MetricsLog, TensorBoardLog, CurvePlot]
    assert quiet[3].margin == 16.0  # the triplet margin is drawn on the curves
    quiet[0].save_config(run.config)
    assert config_from_dict(TrainConfig, read_yaml(run.config)) == c
    pairwise = config(loss="pairwise")
    assert build_callbacks(pairwise, run, pairwise.model.network(), quiet=True)[3].margin is None


def test_the_trainer_gets_the_parts_the_config_names(tmp_path):
    data = image_folder(tmp_path / "data", [1, 1, 2, 2, 3, 3, 4, 4])
    c = config(dataset=str(data), gs_warmup=2, seed=7, loss="pairwise", collapse_patience=3)
    trainer = build_trainer(c, None, neighbors_fn=never_called)
    assert trainer.callbacks == []  # no run folder: nothing is written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    sampler = trainer.sampler
    assert isinstance(sampler, GraphSampler) and sampler.neighbors_fn is never_called
    assert (sampler.warmup.epochs, sampler.seed, sampler.batch_size, sampler.num_instances) == (2, 7, 4, 2)
    assert trainer.loader.batch_sampler is sampler and len(trainer.loader.dataset) == 8
    assert isinstance(trainer.criterion, PairwiseMatchingLoss) and trainer.criterion.matcher is trainer.matcher
    assert trainer.schedule.reference_epoch == 4  # the second epoch after the warm-up
    assert isinstance(trainer.guard, TrainingGuard) and trainer.guard.collapse_patience == 3
    assert trainer.amp_dtype is None  # auto on the CPU

    pk = build_trainer(config(dataset=str(data), sampler="pk"), tmp_path / "run", quiet=True, guard=None)
    assert isinstance(pk.sampler, PKSampler) and isinstance(pk.criterion, TripletLoss) and pk.guard is None
    assert [type(cb) for cb in pk.callbacks] == [Checkpointer, MetricsLog, TensorBoardLog, CurvePlot]
    assert pk.schedule.reference_epoch == 2
    assert build_trainer(config(dataset=str(data), sampler="pk"), tmp_path / "run", callbacks=[]).callbacks == []


def test_a_warmup_loss_is_used_only_for_the_graph_samplers_warmup_epochs(tmp_path):
    data = image_folder(tmp_path / "data", [1, 1, 2, 2, 3, 3, 4, 4])
    warm = {"dataset": str(data), "gs_warmup": 3, "warmup_loss": "pairwise"}
    trainer = build_trainer(config(**warm), None, neighbors_fn=never_called)
    criterion = trainer.criterion
    assert isinstance(criterion, WarmupLoss) and trainer.sampler.warmup.epochs == 3
    assert isinstance(criterion.warmup, PairwiseMatchingLoss) and isinstance(criterion.main, TripletLoss)
    auto = build_trainer(config(**warm | {"gs_warmup": "auto"}), None, neighbors_fn=never_called)
    assert isinstance(auto.criterion, WarmupLoss) and auto.sampler.warmup.epochs is None
    assert auto.schedule.reference_epoch == 0  # set when the automatic warm-up ends
    for other in ({"sampler": "pk"}, {"gs_warmup": 0}, {"warmup_loss": "triplet"}, {"warmup_loss": "same"}):
        assert isinstance(build_trainer(config(**warm | other), None).criterion, TripletLoss), other


def test_a_warm_start_takes_the_weights_of_another_run(tmp_path):
    data = image_folder(tmp_path / "data", [1, 1, 2, 2])
    c = config(dataset=str(data), sampler="pk")
    model, matcher = build_model(c.model.network())
    with torch.no_grad():
        matcher.fc.weight.fill_(0.5)
    (tmp_path / "before").mkdir()
    save_checkpoint(model_payload(model, matcher, c.model.network()), tmp_path / "before" / "checkpoint.pt")
    trainer = build_trainer(config(dataset=str(data), sampler="pk", init_from=str(tmp_path / "before")), None)
    torch.testing.assert_close(trainer.matcher.fc.weight, matcher.fc.weight)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(trainer.model.state_dict()[key], value, msg=key)


def test_resuming_a_checkpoint_without_training_state_is_refused(tmp_path):
    data = image_folder(tmp_path / "data", [1, 1, 2, 2])
    c = config(dataset=str(data), sampler="pk")
    model, matcher = build_model(c.model.network())
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    save_checkpoint(model_payload(model, matcher, c.model.network()), run.checkpoint)
    message = f"{run.checkpoint} cannot be resumed: it lacks optimizer, schedule, sampler, rng, epoch"
    with pytest.raises(QAConvError, match=message):
        build_trainer(c, run.path, resume=True, quiet=True)


def test_without_a_distributed_context_the_trainer_runs_on_the_configs_device(tmp_path, monkeypatch):
    """The Python API (no torchrun context) takes the device from the config, as `qaconv train` does; it used
    to train on the CPU whatever the config said."""
    data = image_folder(tmp_path / "data", [1, 1, 2, 2, 3, 3, 4, 4])
    trainer = build_trainer(config(dataset=str(data), device="cpu"), None, neighbors_fn=never_called)
    assert trainer.ctx.device == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(QAConvError, match="--device cuda: CUDA is not available"):
        build_trainer(config(dataset=str(data), device="cuda"), None, neighbors_fn=never_called)
