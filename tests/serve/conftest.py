"""Fixtures of the web app tests: the tiny model and synthetic gallery of the inference tests, indexed once."""

from __future__ import annotations

from pathlib import Path

import pytest

from qaconv.inference import GalleryIndex, ReID
from qaconv.serve import GalleryService
from tests.inference.conftest import checkpoint, gallery_dir, other_checkpoint, query_images, reid, synthetic

__all__ = ["checkpoint", "gallery_dir", "other_checkpoint", "query_images", "reid", "synthetic"]


@pytest.fixture(scope="session")
def index_dir(reid: ReID, gallery_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve-index") / "gallery.idx"
    reid.build_index(gallery_dir, out)
    return out


@pytest.fixture(scope="session")
def service(reid: ReID, index_dir: Path) -> GalleryService:
    return GalleryService(reid, GalleryIndex.open(index_dir), max_upload_bytes=256 * 1024)
