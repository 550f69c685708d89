"""Shared by the data set tests: tiny trees of empty files laid out as the reference records of the published code
give them, and a check of loaded records against those references."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qaconv.data import Record

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "reference" / "datasets.json"
REFERENCE = json.loads(FIXTURE.read_text())

MARKET_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def touch(root: Path, rel: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def build_tree(root: Path, layout: dict) -> Path:
    """Recreate a reference layout with empty files (and MSMT's list files plus its image folders)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel in layout.get("files", []):
        touch(root, rel)
    for fname, text in layout.get("lists", {}).items():
        (root / fname).write_text(text)
    if "lists" in layout:
        (root / "train").mkdir(exist_ok=True)
        (root / "test").mkdir(exist_ok=True)
    return root


def assert_records(records: list[Record], expected: list, root: Path, prefix: str) -> None:
    assert len(records) == len(expected)
    for rec, (fname, pid, camid, time) in zip(records, expected, strict=True):
        assert os.path.isabs(rec.path)
        assert Path(os.path.relpath(rec.path, root)).as_posix() == prefix + fname
        assert type(rec.pid) is int and type(rec.camid) is int
        assert (rec.pid, rec.camid) == (pid, camid), fname
        assert rec.time == pytest.approx(time, abs=1e-6), fname
