"""Image loading with clear errors, ImageDataset items, seeding, and make_loader's wiring."""

from __future__ import annotations

import random
from collections import namedtuple

import numpy as np
import pytest
import torch
from PIL import Image

from qaconv.data.loader import ImageDataset, load_image, make_loader, seed_everything, worker_init_fn
from qaconv.data.transforms import build_test_transform, build_train_transform
from qaconv.errors import QAConvError

Rec = namedtuple("Rec", "path pid camid time")


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        path = tmp_path / f"{i:04d}_c{i % 3 + 1}s1_000100_01.jpg"
        Image.fromarray(rng.integers(0, 256, (40, 20, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_load_image_returns_rgb(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (5, 7), 100).save(path)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (5, 7)
    rgba = tmp_path / "alpha.png"
    Image.new("RGBA", (3, 3), (10, 20, 30, 0)).save(rgba)
    assert load_image(rgba).getpixel((0, 0)) == (10, 20, 30)


def test_load_image_errors_name_the_file(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    good = tmp_path / "good.jpg"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    for path, words in (
        (tmp_path / "missing.jpg", "not found"),
        (text, "not an image"),
        (truncated, "cannot read"),
        (folder, "cannot read"),
    ):
        with pytest.raises(QAConvError, match=words) as err:
            load_image(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_image_dataset_items(images):
    records = [Rec(p, i // 2, i % 3, 0.0) for i, p in enumerate(images)]
    ds = ImageDataset(records, build_test_transform(32, 16))
    assert len(ds) == 6 and ds.pids == [0, 0, 1, 1, 2, 2] and ds.camids == [0, 1, 2, 0, 1, 2]
    x, pid, camid, index = ds[3]
    assert x.shape == (3, 32, 16) and (pid, camid, index) == (1, 0, 3)
    tuples = ImageDataset([(p, 7, 1) for p in images])  # plain tuples; no transform: the PIL image
    img, pid, camid, index = tuples[0]
    assert isinstance(img, Image.Image) and (pid, camid, index) == (7, 1, 0)


def test_seed_everything_repeats_all_rngs():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    seed_everything(5)
    first = draw()
    seed_everything(5)
    assert draw() == first
    seed_everything(6)
    assert draw() != first


def batches(loader):
    return [(x.clone(), pids.clone(), idx.clone()) for x, pids, _, idx in loader]


@pytest.mark.parametrize("workers", [0, 2])
def test_seeded_runs_give_the_same_batches(images, workers):
    def run():
        seed_everything(123)
        ds = ImageDataset([(p, i, 0) for i, p in enumerate(images)], build_train_transform(32, 16))
        loader = make_loader(ds, batch_size=2, shuffle=True, num_workers=workers, device="cpu")
        return batches(loader) + batches(loader)  # two epochs

    a, b = run(), run()
    assert len(a) == 6
    for (xa, pa, ia), (xb, pb, ib) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(pa, pb) and torch.equal(ia, ib)
    assert not torch.equal(torch.cat([x for x, _, _ in a[:3]]), torch.cat([x for x, _, _ in a[3:]]))


def test_workers_do_not_repeat_each_others_augmentation(images):
    seed_everything(0)
    ds = ImageDataset([(images[0], 0, 0)] * 4, build_train_transform(32, 16))
    loader = make_loader(ds, batch_size=1, num_workers=2, device="cpu")
    out = [x for x, *_ in loader]
    assert not torch.equal(out[0], out[1])  # items 0 and 1 come from different workers


def test_worker_init_fn_reseeds_the_transform(images):
    class Probe(torch.utils.data.Dataset):
        def __init__(self):
            self.transform = build_train_transform(8, 4, seed=0)

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.tensor([random.random(), np.random.rand(), float(self.transform.rng.random())])

    seed_everything(9)
    loader = make_loader(Probe(), batch_size=1, num_workers=2, seed=42, device="cpu")
    rows = torch.cat([b for b in loader])
    assert rows[0, 2] != rows[1, 2]  # both copies were built with seed=0: only the reseed tells them apart
    again = torch.cat([b for b in make_loader(Probe(), batch_size=1, num_workers=2, seed=42, device="cpu")])
    assert torch.equal(rows, again)
    worker_init_fn(0)  # in the main process it is harmless


def test_make_loader_wiring(images):
    ds = ImageDataset([(p, 0, 0) for p in images], build_test_transform(16, 8))
    loader = make_loader(ds, batch_size=4, num_workers=0, device="cpu", drop_last=True)
    assert not loader.pin_memory and not loader.persistent_workers and len(loader) == 1
    assert loader.worker_init_fn is worker_init_fn
    threaded = make_loader(ds, batch_size=4, num_workers=1, device="cpu")
    assert threaded.persistent_workers and not threaded.pin_memory
    sampled = make_loader(ds, batch_sampler=[[0, 1, 2], [3, 4, 5]], device="cpu")
    shapes = [x.shape for x, *_ in sampled]
    assert shapes == [(3, 3, 16, 8), (3, 3, 16, 8)]
    if torch.cuda.is_available():
        assert make_loader(ds, device="cuda").pin_memory
    with pytest.raises(QAConvError):
        make_loader(ds, num_workers=-1)


@pytest.mark.parametrize("workers", [0, 1])
def test_bad_file_in_a_loader_is_a_one_line_error(tmp_path, images, workers):
    bad = tmp_path / "0009_c1s1_000001_01.jpg"
    bad.write_bytes(b"garbage")
    ds = ImageDataset([(images[0], 0, 0), (str(bad), 9, 0)], build_test_transform(16, 8))
    loader = make_loader(ds, batch_size=2, num_workers=workers, device="cpu")
    with pytest.raises(QAConvError) as err:
        list(loader)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_a_seeded_key_augments_from_its_seed_alone(images):
    ds = ImageDataset([Rec(p, i, 0, 0) for i, p in enumerate(images)], build_train_transform(32, 16, max_size=0.5))
    first = ds[(2, (0, 1, 7, 3))][0]
    ds[4]  # the transform's own stream moves on; keyed items do not use it
    assert torch.equal(ds[(2, (0, 1, 7, 3))][0], first)
    assert not torch.equal(ds[(2, (0, 1, 7, 4))][0], first)
    assert ds[(2, (0, 1, 7, 3))][3] == 2
