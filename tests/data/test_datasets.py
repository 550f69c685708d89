"""The data set package: the registry of names (unknown names, combine_all support), the usual folder names found
under a data dir, and `open_dataset`'s hints for the user's own folders and files. Each data set module has its
tests in tests/data/datasets/."""

from __future__ import annotations

import pytest

from qaconv.data import create_dataset, find_dataset_root
from qaconv.errors import QAConvError
from tests.data.datasets.conftest import REFERENCE, build_tree, touch


def test_find_dataset_root(tmp_path):
    build_tree(tmp_path / "Market-1501-v15.09.15", REFERENCE["market1501"])
    build_tree(tmp_path / "cuhk03-np" / "detected", REFERENCE["cuhk03_np"])
    build_tree(tmp_path / "MSMT17_V1", REFERENCE["msmt17"])
    build_tree(tmp_path / "RandPerson" / "randperson", REFERENCE["randperson"])
    assert find_dataset_root("market", tmp_path) == str(tmp_path / "Market-1501-v15.09.15")
    assert find_dataset_root("cuhk03_np_detected", tmp_path) == str(tmp_path / "cuhk03-np" / "detected")
    assert find_dataset_root("cuhk03_np_labeled", tmp_path) is None  # only detected/ exists
    assert find_dataset_root("msmt", tmp_path) == str(tmp_path / "MSMT17_V1")
    assert find_dataset_root("randperson", tmp_path) == str(tmp_path / "RandPerson" / "randperson")
    assert find_dataset_root("clonedperson", tmp_path) is None
    assert find_dataset_root("market", tmp_path / "nowhere") is None


def test_reference_folder_names(tmp_path):
    """The published code's `<data-dir>/<name>` folders are found too."""
    build_tree(tmp_path / "market", REFERENCE["market1501"])
    build_tree(tmp_path / "cuhk03_np_labeled", REFERENCE["cuhk03_np"])
    build_tree(tmp_path / "msmt", REFERENCE["msmt17"])
    assert find_dataset_root("market1501", tmp_path) == str(tmp_path / "market")
    assert find_dataset_root("cuhk03_np_labeled", tmp_path) == str(tmp_path / "cuhk03_np_labeled")
    assert find_dataset_root("msmt17", tmp_path) == str(tmp_path / "msmt")


def test_user_data_mistakes_get_a_hint(tmp_path):
    from qaconv.data import open_dataset

    with pytest.raises(QAConvError, match=r"data set not found: .*nowhere/mine does not exist \(give a folder"):
        open_dataset(str(tmp_path / "nowhere" / "mine"))
    (tmp_path / "semi.csv").write_text("path;pid;camid\na.jpg;1;0\n")
    with pytest.raises(QAConvError, match=r"semi\.csv:1: the fields are separated by ';'; separate .* with commas"):
        open_dataset(str(tmp_path / "semi.csv"))
    for pid in ("0001", "0002"):  # one folder per person: the ImageFolder layout
        touch(tmp_path / "wl", f"bounding_box_train/{pid}/{pid}_c1_01.jpg")
    with pytest.raises(QAConvError, match=r"bounding_box_train holds images only in sub-folders \(0001, 0002\)"):
        open_dataset(str(tmp_path / "wl"))


@pytest.mark.parametrize("name", ["market1501", "cuhk03_np_detected", "clonedperson", "folder", "csv"])
def test_combine_all_unsupported(tmp_path, name):
    with pytest.raises(QAConvError, match=r"does not support combine_all \(supported by: msmt17, randperson\)"):
        create_dataset(name, tmp_path, combine_all=True)


def test_unknown_name_lists_valid_ones(tmp_path):
    with pytest.raises(QAConvError, match=r"unknown data set 'duke'; valid names: market1501, cuhk03_np_detected"):
        create_dataset("duke", tmp_path)
