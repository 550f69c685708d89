"""Test sets: loading errors, csv folders, distinct labels."""

import pytest

from qaconv.engine import evaluate as ev
from qaconv.errors import QAConvError


def test_load_testset_errors(tmp_path):
    with pytest.raises(QAConvError, match="--testset nosuchset: unknown data set .*market1501"):
        ev.load_testset("nosuchset", tmp_path)
    with pytest.raises(QAConvError, match="--testset msmt17: data set msmt17 not found under .*MSMT17_V1"):
        ev.load_testset("msmt17", tmp_path)


def test_load_testset_accepts_a_folder_of_csv_lists(tmp_path):
    (tmp_path / "query.csv").write_text("path,pid,camid\nq1.jpg,1,0\n")
    (tmp_path / "gallery.csv").write_text("path,pid,camid\ng1.jpg,1,1\ng2.jpg,2,0\n")
    label, ds = ev.load_testset(str(tmp_path), "unused")
    assert label == tmp_path.name and (len(ds.query), len(ds.gallery)) == (1, 2)


def _folder(root, *names):
    root.mkdir(parents=True)
    (root / "query.csv").write_text("path,pid,camid\nq1.jpg,1,0\n")
    (root / "gallery.csv").write_text("path,pid,camid\ng1.jpg,1,1\n")
    return str(root)


def test_folders_with_one_name_get_the_shortest_distinct_labels(tmp_path):
    a = _folder(tmp_path / "syn" / "x" / "sb")
    b = _folder(tmp_path / "other" / "x" / "sb")
    c = _folder(tmp_path / "other" / "sc")
    labels = [label for label, _ in ev.load_testsets([a, b, c], "unused")]
    assert labels == ["syn/x/sb", "other/x/sb", "sc"]
    assert ev.file_stem(labels[0]) == "syn-x-sb"
    assert [label for label, _ in ev.load_testsets([a, c], "unused")] == ["sb", "sc"]  # unchanged without a clash


def test_the_same_test_set_twice_is_refused(tmp_path, monkeypatch):
    a = _folder(tmp_path / "sb")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(QAConvError, match="--testset: .*sb and sb are the same test set; give it once"):
        ev.load_testsets([a, "sb"], "unused")
    with pytest.raises(QAConvError, match="give at least one test set"):
        ev.load_testsets([], "unused")
