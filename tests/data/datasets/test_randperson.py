"""RandPerson: parity with the reference records, and scene numbers out of range refused."""

from __future__ import annotations

import pytest

from qaconv.data import create_dataset
from qaconv.errors import QAConvError
from tests.data.datasets.conftest import REFERENCE, assert_records, build_tree, touch


def test_randperson_matches_reference(tmp_path):
    ref = REFERENCE["randperson"]
    root = build_tree(tmp_path / "randperson", ref)
    ds = create_dataset("randperson", root)
    assert_records(ds.train, ref["train"], root, "randperson_subset/")
    assert ds.query == [] and ds.gallery == []
    assert ds.has_time
    assert create_dataset("randperson", root, combine_all=True).train == ds.train  # accepted, no-op


def test_unparsable_randperson_scene(tmp_path):
    root = build_tree(tmp_path / "randperson", REFERENCE["randperson"])
    touch(root, "randperson_subset/000001_s11_c00_f000001.jpg")  # there are 11 scenes: 0..10
    touch(root, "randperson_subset/000001_c00_s04_f000001.jpg")  # an old README's order: c before s
    with pytest.raises(QAConvError, match="2 file name"):
        create_dataset("randperson", root)
