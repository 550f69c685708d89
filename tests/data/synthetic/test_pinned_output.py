"""The generator's output is pinned: a change to drawing, planning or writing that alters the demo's data
(or any data set) must show up here and be deliberate (then bump GENERATOR_VERSION and update the digests).

The digests were computed with the generator before it became a package (NumPy 2.4, Pillow 13.0). File
names and meta.json depend only on NumPy's random streams; the JPEG bytes also on Pillow's drawing and
libjpeg, so they are compared only under the NumPy and Pillow versions that recorded them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import PIL
import pytest

from qaconv.data.synthetic import SynthConfig, generate
from qaconv.folders import MARKER

TINY = {"num_ids": 6, "num_cams": 3, "seed": 0, "images_per_id": 4, "height": 64, "width": 32}
EXTRAS = {"junk_fraction": 0.5, "distractor_fraction": 0.5}
RECORDED_WITH = {"numpy": "2.4", "Pillow": "13.0"}
NAMES_AND_META = {
    "A": "1597a17b637db529724a88ae7a13bdddf00e05a7e868b5bfe25dbd6d4e09b561",
    "B": "3b130425e71339da284855d914e635da44f25586ec15da12df2ce3b5e6aafc07",
}
ALL_BYTES = {
    "A": "df3a192654f9d1cd9856822c7c1dbcdd00d86bcd3b9170b0e620be5a2e10d637",
    "B": "136002210809a5ea7c716d3622404f9870cb2f4c7b966fee91cfdbb12b9118c4",
}


def _files(root: Path) -> list[Path]:
    """The generated files (the folder's kind marker, qaconv.folders.MARKER, is not the generator's output)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MARKER)


def names_and_meta_digest(root: Path) -> str:
    """sha256 of every file's relative path, then of meta.json's bytes."""
    h = hashlib.sha256()
    for path in _files(root):
        h.update(f"{path.relative_to(root).as_posix()}\n".encode())
    h.update((root / "meta.json").read_bytes())
    return h.hexdigest()


def bytes_digest(root: Path) -> str:
    """sha256 of the lines 'relative path, sha256 of the file' of every file."""
    h = hashlib.sha256()
    for path in _files(root):
        h.update(f"{path.relative_to(root).as_posix()} {hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


def _versions() -> dict[str, str]:
    return {"numpy": ".".join(np.__version__.split(".")[:2]), "Pillow": ".".join(PIL.__version__.split(".")[:2])}


@pytest.fixture(scope="module", params=["A", "B"])
def tiny_set(request, tmp_path_factory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("pinned") / request.param
    generate(root, SynthConfig(style=request.param, **TINY, **EXTRAS), workers=1)
    return request.param, root


def test_names_and_meta_are_pinned(tiny_set):
    style, root = tiny_set
    assert names_and_meta_digest(root) == NAMES_AND_META[style]


def test_image_bytes_are_pinned(tiny_set):
    style, root = tiny_set
    if _versions() != RECORDED_WITH:
        pytest.skip(f"JPEG bytes recorded with {RECORDED_WITH}, running {_versions()}")
    assert bytes_digest(root) == ALL_BYTES[style], "the generated pixels changed"
