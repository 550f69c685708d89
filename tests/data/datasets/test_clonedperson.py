"""ClonedPerson: ids relabelled, cameras and times read from the file names, the folder found one level down."""

from __future__ import annotations

import os

from qaconv.data import create_dataset
from tests.data.datasets.conftest import MARKET_DIRS, touch


def test_clonedperson(tmp_path):
    root = tmp_path / "ClonedPerson"
    for rel in [
        "train/000007_s03_c02_f000048.jpg",
        "train/000003_s01_c00_f000024.jpg",
        "train/000003_s05_c01_f000240.png",
        "test/query/000100_s02_c01_f000012.jpg",
        "test/query/-1_s02_c01_f000012.jpg",
        "test/gallery/000100_s04_c03_f000120.jpg",
        "test/gallery/000000_s04_c00_f000000.jpg",
    ]:
        touch(root, rel)
    ds = create_dataset("clonedperson", tmp_path)  # found one level down
    assert ds.root == str(root)
    got = {s: [(os.path.basename(r.path), r.pid, r.camid, r.time) for r in ds.split(s)] for s in MARKET_DIRS}
    assert got["train"] == [
        ("000003_s01_c00_f000024.jpg", 0, 0, 1.0),
        ("000003_s05_c01_f000240.png", 0, 1, 10.0),
        ("000007_s03_c02_f000048.jpg", 1, 2, 2.0),
    ]
    assert got["query"] == [("000100_s02_c01_f000012.jpg", 100, 1, 0.5)]
    assert got["gallery"] == [("000000_s04_c00_f000000.jpg", 0, 0, 0.0), ("000100_s04_c03_f000120.jpg", 100, 3, 5.0)]
    assert ds.has_time and ds.num_cams == 4
