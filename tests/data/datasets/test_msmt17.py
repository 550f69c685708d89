"""MSMT17: parity with the reference records (also with combine_all), and malformed list lines named."""

from __future__ import annotations

import pytest

from qaconv.data import create_dataset
from qaconv.errors import QAConvError
from tests.data.datasets.conftest import REFERENCE, assert_records, build_tree


def test_msmt17_matches_reference(tmp_path):
    ref = REFERENCE["msmt17"]
    root = build_tree(tmp_path / "msmt", ref)
    ds = create_dataset("msmt17", root)
    assert_records(ds.train, ref["train"], root, "train/")
    assert_records(ds.query, ref["query"], root, "test/")
    assert_records(ds.gallery, ref["gallery"], root, "test/")
    assert not ds.has_time


def test_msmt17_combine_all_matches_reference(tmp_path):
    ref = REFERENCE["msmt17_all"]
    root = build_tree(tmp_path / "msmt", ref)
    ds = create_dataset("msmt", root, combine_all=True)
    assert_records(ds.train, ref["train"], root, "")
    assert ds.query == [] and ds.gallery == []  # every test image is in train
    assert ds.num_train_ids == len({r[1] for r in ref["train"]})


@pytest.mark.parametrize(
    "line",
    ["0000/0000_000_03_0303morning_9693_0.jpg", "0000/0000_000_03_x.jpg zero", "0000/bad.jpg 0", "0/0_0_00_x.jpg 0"],
)
def test_malformed_msmt_line_names_file_and_line(tmp_path, line):
    ref = REFERENCE["msmt17"]
    root = build_tree(tmp_path / "msmt", ref)
    (root / "list_query.txt").write_text(ref["lists"]["list_query.txt"] + line + "\n")
    lineno = ref["lists"]["list_query.txt"].count("\n") + 1
    with pytest.raises(QAConvError, match=rf"list_query\.txt:{lineno}: expected"):
        create_dataset("msmt17", root)
