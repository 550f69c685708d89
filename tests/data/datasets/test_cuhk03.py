"""CUHK03-NP: both variants match the reference records, from the release's wrapper folder or their own."""

from __future__ import annotations

import pytest

from qaconv.data import create_dataset
from tests.data.datasets.conftest import MARKET_DIRS, REFERENCE, assert_records, build_tree


@pytest.mark.parametrize("variant", ["detected", "labeled"])
def test_cuhk03_np_matches_reference(tmp_path, variant):
    ref = REFERENCE["cuhk03_np"]
    wrapper = tmp_path / "cuhk03-np"
    build_tree(wrapper / "detected", ref)
    build_tree(wrapper / "labeled", ref)
    ds = create_dataset(f"cuhk03_np_{variant}", wrapper)  # the release's wrapper folder
    root = wrapper / variant
    assert ds.root == str(root)
    for split, folder in MARKET_DIRS.items():
        assert_records(ds.split(split), ref[split], root, folder + "/")
    assert not ds.has_time and ds.num_cams == 2
    # the variant's own folder works as root too
    assert create_dataset(f"cuhk03_np_{variant}", root).train == ds.train
