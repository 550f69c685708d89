"""What every data set shares: the container and its summary, ids relabelled in sorted order, and the errors that
name the layout or the split folder a data set lacks."""

from __future__ import annotations

import os
import warnings

import pytest

from qaconv.data import Record, ReIDDataset, create_dataset, dataset_names
from qaconv.errors import QAConvError
from tests.data.datasets.conftest import touch


def test_train_relabel_is_sorted_and_deterministic(tmp_path):
    root = tmp_path / "mine"
    for rel in ["bounding_box_train/10_c1_0.jpg", "bounding_box_train/9_c2_0.jpg", "bounding_box_train/100_c1_1.jpg"]:
        touch(root, rel)
    ds = create_dataset("folder", root)
    assert {os.path.basename(r.path): r.pid for r in ds.train} == {"10_c1_0.jpg": 1, "100_c1_1.jpg": 2, "9_c2_0.jpg": 0}


def test_missing_root_names_layout(tmp_path):
    with pytest.raises(QAConvError, match=r"not found.*bounding_box_train.*docs/datasets\.md") as exc:
        create_dataset("market1501", tmp_path / "absent")
    assert "\n" not in str(exc.value)


def test_missing_split_folder_is_named(tmp_path):
    root = tmp_path / "market1501"
    touch(root, "bounding_box_train/0002_c1s1_000451_03.jpg")
    touch(root, "query/0002_c1s1_000451_03.jpg")
    with pytest.raises(QAConvError, match=r"lacks bounding_box_test/;.*docs/datasets\.md"):
        create_dataset("market1501", root)
    with pytest.raises(QAConvError, match=r"msmt17.*lacks .*list_train\.txt"):
        create_dataset("msmt17", root)


def test_dataset_container_and_summary():
    ds = ReIDDataset(
        "toy",
        train=[Record("/a", 0, 0), Record("/b", 1, 2, 1.0)],
        query=[Record("/q", 5, 1)],
        gallery=[Record("/g", 5, 0), Record("/h", 0, 3)],
    )
    assert ds.num_train_ids == 2 and ds.num_cams == 4
    stats = ds.stats()
    assert stats["gallery"] == (2, 2, 2) and stats["query"].images == 1
    text = ds.summary()
    assert "4 cameras" in text and "gallery |     2 |       2 |    2" in text
    assert dataset_names(discoverable_only=True) == [
        "market1501",
        "cuhk03_np_detected",
        "cuhk03_np_labeled",
        "msmt17",
        "randperson",
        "clonedperson",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ReIDDataset("empty").num_cams == 0
