"""Data: public re-id data sets (records of path, pid, camid, time), transforms, samplers and loaders."""

from qaconv.data.datasets import (
    Record,
    ReIDDataset,
    create_dataset,
    dataset_names,
    find_dataset_root,
    open_dataset,
    register_dataset,
)
from qaconv.data.loader import ImageDataset, load_image, make_loader, seed_everything
from qaconv.data.synthetic import generate
from qaconv.data.transforms import build_test_transform, build_train_transform

__all__ = [
    "ImageDataset",
    "Record",
    "ReIDDataset",
    "build_test_transform",
    "build_train_transform",
    "create_dataset",
    "dataset_names",
    "find_dataset_root",
    "generate",
    "load_image",
    "make_loader",
    "open_dataset",
    "register_dataset",
    "seed_everything",
]
