"""Shared by the synthetic generator's tests: a small generated set and helpers that read one back."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from qaconv.data.synthetic import SPLIT_DIRS, SynthConfig, generate

NAME = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
SMALL = {"num_ids": 12, "num_cams": 4, "images_per_id": 6, "height": 64, "width": 32}


def parse(root: Path) -> dict[str, list[tuple[int, int, int, int, str]]]:
    """(pid, camera 1-based, session, frame, name) of every file in each split folder."""
    out = {}
    for split in SPLIT_DIRS:
        rows = []
        for path in sorted((root / split).iterdir()):
            m = NAME.match(path.name)
            assert m, f"not a Market-1501 file name: {split}/{path.name}"
            rows.append((int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), path.name))
        out[split] = rows
    return out


def read_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def small_set(tmp_path_factory):
    """(root, meta, seconds) of a 12-id style-A set generated in this process."""
    root = tmp_path_factory.mktemp("synth") / "market"
    start = time.perf_counter()
    meta = generate(root, SynthConfig(seed=5, style="A", **SMALL), workers=1)
    return root, meta, time.perf_counter() - start
