"""Session fixtures for the inference tests: a synthetic data set and a tiny model trained a few steps on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from qaconv.config import ModelConfig
from qaconv.data.loader import load_image
from qaconv.data.synthetic import SynthConfig, generate
from qaconv.data.transforms import build_test_transform
from qaconv.engine.checkpoint import build_model, model_payload, save_checkpoint
from qaconv.inference import GalleryIndex, ReID
from qaconv.losses import TripletLoss

TINY = ModelConfig(arch="resnet18", ibn=None, final_layer="layer3", neck=16, height=64, width=32)


def _train(root: Path, seed: int, steps: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """build_model(TINY) trained `steps` SGD steps with the triplet loss on the synthetic training images."""
    torch.manual_seed(seed)
    model, matcher = build_model(TINY)
    files = sorted((root / "bounding_box_train").glob("*.jpg"))
    transform = build_test_transform(TINY.height, TINY.width)
    images = torch.stack([transform(load_image(f)) for f in files])
    labels = torch.tensor([int(f.name.split("_")[0]) for f in files])
    loss_fn = TripletLoss(matcher)
    optimizer = torch.optim.SGD([*model.parameters(), *matcher.parameters()], lr=0.005, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    matcher.train()
    for _ in range(steps):
        batch = torch.randperm(len(files), generator=generator)[:12]
        loss, _ = loss_fn(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
    return model, matcher


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> Path:
    """A small Market-1501-layout data set: 8 ids, 2 cameras, 64x32 JPEGs."""
    root = tmp_path_factory.mktemp("synthetic") / "market"
    generate(root, SynthConfig(num_ids=8, num_cams=2, seed=0, images_per_id=4, height=64, width=32), workers=1)
    return root


@pytest.fixture(scope="session")
def gallery_dir(synthetic) -> Path:
    return synthetic / "bounding_box_test"


@pytest.fixture(scope="session")
def checkpoint(synthetic, tmp_path_factory) -> Path:
    """A run folder holding checkpoint.pt of the tiny model after 5 SGD steps."""
    model, matcher = _train(synthetic, seed=0, steps=5)
    run = tmp_path_factory.mktemp("run")
    save_checkpoint(model_payload(model, matcher, TINY), run / "checkpoint.pt")
    return run


@pytest.fixture(scope="session")
def other_checkpoint(synthetic, tmp_path_factory) -> Path:
    """A checkpoint file of the same architecture with other weights (1 step from another seed)."""
    model, matcher = _train(synthetic, seed=1, steps=1)
    return save_checkpoint(model_payload(model, matcher, TINY), tmp_path_factory.mktemp("other") / "other.pt")


@pytest.fixture(scope="session")
def nan_checkpoint(synthetic, tmp_path_factory) -> Path:
    """A checkpoint file whose weights hold NaN, as a diverged training (--lr 1e9) saves them."""
    model, matcher = build_model(TINY)
    with torch.no_grad():
        matcher.fc.weight.fill_(float("nan"))
    return save_checkpoint(model_payload(model, matcher, TINY), tmp_path_factory.mktemp("nan") / "nan.pt")


@pytest.fixture(scope="session")
def reid(checkpoint) -> ReID:
    return ReID.from_checkpoint(checkpoint, device="cpu")


@pytest.fixture(scope="session")
def query_images(synthetic) -> list[Path]:
    return sorted((synthetic / "query").glob("*.jpg"))


@pytest.fixture(scope="session")
def gallery_images(gallery_dir) -> list[Path]:
    return sorted(gallery_dir.glob("*.jpg"))


@pytest.fixture
def gallery(gallery_dir, tmp_path) -> Path:
    """A copy of the test gallery that the tests may edit."""
    return shutil.copytree(gallery_dir, tmp_path / "gallery")


@pytest.fixture(scope="module")
def index(reid, gallery_dir, tmp_path_factory) -> GalleryIndex:
    out = tmp_path_factory.mktemp("index") / "gallery.idx"
    return reid.build_index(gallery_dir, out)


@pytest.fixture
def workdir(tmp_path, monkeypatch, checkpoint, gallery_dir, query_images) -> Path:
    """A temporary current folder laid out as the docs' examples expect: runs/market/checkpoint.pt,
    gallery/ (the synthetic gallery), query.jpg, a.jpg and b.jpg (two query images)."""
    shutil.copytree(checkpoint, tmp_path / "runs" / "market")
    shutil.copytree(gallery_dir, tmp_path / "gallery")
    shutil.copy(query_images[0], tmp_path / "query.jpg")
    shutil.copy(query_images[0], tmp_path / "a.jpg")
    shutil.copy(query_images[1], tmp_path / "b.jpg")
    monkeypatch.chdir(tmp_path)
    return tmp_path
