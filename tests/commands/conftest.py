"""The commands' tests share the inference tests' tiny model, synthetic data and gallery."""

from tests.inference.conftest import (
    checkpoint,
    gallery_dir,
    gallery_images,
    nan_checkpoint,
    other_checkpoint,
    query_images,
    reid,
    synthetic,
)

__all__ = [
    "checkpoint",
    "gallery_dir",
    "gallery_images",
    "nan_checkpoint",
    "other_checkpoint",
    "query_images",
    "reid",
    "synthetic",
]
