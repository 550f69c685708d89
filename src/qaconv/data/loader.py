"""Image data sets and DataLoaders: decoding with clear errors, per-worker seeding, one seed for a run.

    seed_everything(0)
    train = ImageDataset(dataset.train, build_train_transform(384, 128))
    loader = make_loader(train, batch_sampler=sampler, num_workers=8, device=device)
    for images, pids, camids, indices in loader: ...

Reproducibility: `seed_everything(seed)` seeds Python, NumPy and torch. Every DataLoader worker
gets torch's per-worker seed (base_seed + worker_id; base_seed is drawn from the loader's
generator, or torch's global RNG, when an epoch's iterator starts), and `worker_init_fn` passes
it on to Python's and NumPy's global RNGs and to the dataset's transform (`reseed`), so
augmentations differ between workers and repeat between seeded runs.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from qaconv.data.samplers import SeededBatches
from qaconv.device import resolve_device
from qaconv.errors import QAConvError
from qaconv.image_reader import DEFAULT_MAX_PIXELS, read_image

__all__ = [
    "EpochLoader",
    "ImageDataset",
    "ImageLoader",
    "load_image",
    "make_loader",
    "seed_everything",
    "worker_init_fn",
]


def seed_everything(seed: int) -> int:
    """Seed Python's `random`, NumPy's global RNG and torch (CPU and every CUDA device); returns seed."""
    seed = int(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)  # reaches spawned worker processes
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image file into an upright RGB PIL image (`qaconv.image_reader.read_image`); a missing,
    unreadable, oversized or non-image file raises QAConvError naming it."""
    return read_image(path, max_pixels=max_pixels)


def _fields(record: Any) -> tuple[str, int, int]:
    if hasattr(record, "path"):
        return record.path, int(record.pid), int(record.camid)
    path, pid, camid = record[:3]
    return path, int(pid), int(camid)


class ImageDataset(Dataset):
    """Records (objects with .path, .pid, .camid, or (path, pid, camid, ...) tuples) as
    (image, pid, camid, index) items; image is `transform(PIL RGB image)` (the PIL image if None).

    A key may also be `(index, seed)`: the transform then draws from a generator made from `seed`
    (an int or a sequence of ints) instead of its own stream, so the image's augmentation depends
    on that key alone (see `qaconv.data.samplers.SeededBatches`). Images are read by
    `qaconv.image_reader.read_image` (upright, RGB), refusing more than `max_pixels`; `for_size`: the longest side
    the transform resizes them to (large JPEGs are then decoded at a reduced scale).
    """

    def __init__(
        self,
        records: Sequence[Any],
        transform: Callable | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        for_size: int | None = None,
    ) -> None:
        self.records = list(records)
        self.transform = transform
        self.max_pixels = max_pixels
        self.for_size = for_size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, Any]) -> tuple[Any, int, int, int]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        path, pid, camid = _fields(self.records[index])
        image = read_image(path, max_pixels=self.max_pixels, for_size=self.for_size)
        if self.transform is not None:
            image = self.transform(image) if seed is None else self.transform(image, np.random.default_rng(seed))
        return image, pid, camid, index

    @property
    def pids(self) -> list[int]:
        return [_fields(r)[1] for r in self.records]

    @property
    def camids(self) -> list[int]:
        return [_fields(r)[2] for r in self.records]


def worker_init_fn(worker_id: int) -> None:
    """Seed a DataLoader worker from torch's per-worker seed: Python, NumPy and the dataset's transform."""
    info = torch.utils.data.get_worker_info()
    seed = info.seed if info is not None else torch.initial_seed()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    dataset = info.dataset if info is not None else None
    transform = getattr(dataset, "transform", None)
    if hasattr(transform, "reseed"):
        transform.reseed(seed)


class ImageLoader(DataLoader):
    """A DataLoader whose QAConvErrors from workers keep their one-line message (torch otherwise
    wraps it in the worker's traceback)."""

    def __iter__(self) -> Iterator[Any]:
        iterator = super().__iter__()
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except QAConvError as exc:
                text, raised_as = str(exc), f"{type(exc).__module__}.{type(exc).__qualname__}: "
                if raised_as not in text:  # raised here, not passed on from a worker with its traceback
                    raise
                raise type(exc)(text.rsplit(raised_as, 1)[1].strip()) from None
            yield batch


def make_loader(
    dataset: Dataset,
    batch_sampler: Any = None,
    batch_size: int = 64,
    shuffle: bool = False,
    num_workers: int = 0,
    drop_last: bool = False,
    device: str | torch.device | None = None,
    seed: int | None = None,
    collate_fn: Callable | None = None,
    prefetch_factor: int | None = None,
) -> ImageLoader:
    """A DataLoader with the project's habits: worker_init_fn seeding, pinned memory only when the
    device is CUDA (device=None: when CUDA is available), persistent workers when num_workers > 0.

    With a batch_sampler (PKSampler, GraphSampler, ...) batch_size, shuffle and drop_last are unused.
    seed: a private torch.Generator for shuffling and the workers' base seed (None: torch's global RNG).
    """
    if num_workers < 0:
        raise QAConvError(f"num_workers must be >= 0, got {num_workers}")
    pin = torch.cuda.is_available() if device is None else resolve_device(device).type == "cuda"
    kwargs: dict[str, Any] = {
        "num_workers": num_workers,
        "pin_memory": pin,
        "worker_init_fn": worker_init_fn,
        "persistent_workers": num_workers > 0,
        "collate_fn": collate_fn,
        "generator": torch.Generator().manual_seed(int(seed)) if seed is not None else None,
    }
    if num_workers > 0 and prefetch_factor is not None:
        kwargs["prefetch_factor"] = prefetch_factor
    if batch_sampler is not None:
        return ImageLoader(dataset, batch_sampler=batch_sampler, **kwargs)
    return ImageLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, **kwargs)


class EpochLoader:
    """The batches of a training epoch: `batch_sampler` set to that epoch, every image augmented from its
    own seed (run seed, epoch, batch number over all ranks, slot), so augmentation does not depend on the
    number of processes, loader workers or where a run was resumed.

        for images, pids, camids, indices in loader.epoch(3): ...
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_sampler: Any,
        *,
        seed: int = 0,
        num_workers: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        self.dataset = dataset
        self.batch_sampler = batch_sampler
        self.seed = int(seed)
        self.num_workers = num_workers
        self.device = device

    @property
    def batch_size(self) -> int:
        return self.batch_sampler.batch_size

    def epoch(self, epoch: int) -> ImageLoader:
        """A DataLoader over epoch `epoch` (1-based); the sampler builds its batches when iteration starts."""
        self.batch_sampler.set_epoch(epoch - 1)
        return make_loader(
            self.dataset,
            batch_sampler=SeededBatches(self.batch_sampler, (self.seed, epoch)),
            num_workers=self.num_workers,
            device=self.device,
            seed=self.seed * 100_003 + epoch,
        )
