"""Market-1501: parity with the reference records, the release's folder one level down, aliases, and the
Market-style file names that the `folder` format reads too."""

from __future__ import annotations

import os
import re

import pytest

from qaconv.data import create_dataset
from qaconv.errors import QAConvError
from tests.data.datasets.conftest import MARKET_DIRS, REFERENCE, assert_records, build_tree, touch


def test_market1501_matches_reference(tmp_path):
    ref = REFERENCE["market1501"]
    root = build_tree(tmp_path / "market1501", ref)
    ds = create_dataset("market1501", root)
    for split, folder in MARKET_DIRS.items():
        assert_records(ds.split(split), ref[split], root, folder + "/")
    assert ds.has_time and ds.num_cams == 6
    assert ds.num_train_ids == len({r[1] for r in ref["train"]})
    assert 0 in {r.pid for r in ds.gallery}  # distractors stay, junk (-1) is dropped
    assert -1 not in {r.pid for r in ds.gallery}


def test_market_one_level_down_and_aliases(tmp_path):
    ref = REFERENCE["market1501"]
    build_tree(tmp_path / "market1501" / "Market-1501-v15.09.15", ref)
    ds = create_dataset("Market", tmp_path / "market1501")
    assert ds.name == "market1501"
    assert ds.root == str(tmp_path / "market1501" / "Market-1501-v15.09.15")
    assert len(ds.train) == len(ref["train"])
    for alias in ("market", "MARKET1501", "market-1501"):
        assert create_dataset(alias, ds.root).train == ds.train


def test_unparsable_names_raise_or_warn(tmp_path):
    root = build_tree(tmp_path / "market1501", REFERENCE["market1501"])
    for name in ["junk.jpg", "0001_c1.jpg", "0003_c0s1_000100_01.jpg"]:
        touch(root, f"bounding_box_train/{name}")
    hint = r"--skip-unparsable; skip_unparsable=True"
    with pytest.raises(QAConvError, match=rf"3 file name\(s\).*bounding_box_train/0001_c1\.jpg.*{hint}"):
        create_dataset("market1501", root)
    with pytest.warns(UserWarning, match="3 file name"):
        ds = create_dataset("market1501", root, skip_unparsable=True)
    assert len(ds.train) == len(REFERENCE["market1501"]["train"])


@pytest.mark.parametrize("name", ["id-1_c1_7.jpg", "IMG_0001_c1_7.jpg", "x0002_c1s1_000451_03.jpg", "0002_c1x.jpg"])
def test_a_name_that_does_not_start_with_pid_and_camera_is_refused_not_read_as_a_junk_or_other_pid(tmp_path, name):
    root = tmp_path / "mine"
    touch(root, "bounding_box_train/0001_c1_1.jpg")
    touch(root, "bounding_box_train/0002_c2_1.jpg")
    touch(root, f"bounding_box_train/{name}")
    with pytest.raises(QAConvError, match=rf"1 file name\(s\) do not match .*bounding_box_train/{re.escape(name)}"):
        create_dataset("folder", root)
    with pytest.warns(UserWarning, match=re.escape(name)):
        ds = create_dataset("folder", root, skip_unparsable=True)
    assert sorted(os.path.basename(r.path) for r in ds.train) == ["0001_c1_1.jpg", "0002_c2_1.jpg"]


def test_market_junk_boxes_still_drop_and_distractors_stay(tmp_path):
    root = tmp_path / "mine"
    touch(root, "bounding_box_test/-1_c1s1_000001_01.jpg")
    touch(root, "bounding_box_test/0000_c1s1_000002_01.jpg")
    touch(root, "query/0003_c2s1_000003_01.jpg")
    ds = create_dataset("folder", root)
    assert [r.pid for r in ds.gallery] == [0] and [r.pid for r in ds.query] == [3]
