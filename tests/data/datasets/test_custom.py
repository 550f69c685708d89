"""The user's own formats: `folder` (Market-style split folders) and `csv` (lists of path, pid, camid, time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qaconv.data import Record, create_dataset
from qaconv.errors import QAConvError
from tests.data.datasets.conftest import MARKET_DIRS, REFERENCE, build_tree, touch


def test_folder_format_with_and_without_time(tmp_path):
    ref = REFERENCE["market1501"]
    ds = create_dataset("folder", build_tree(tmp_path / "my_market", ref))
    market = create_dataset("market1501", tmp_path / "my_market")
    assert ds.name == "my_market" and ds.has_time
    for split in MARKET_DIRS:
        assert ds.split(split) == market.split(split)

    root = tmp_path / "plain"
    for rel in ["query/0001_c1_a.jpg", "bounding_box_test/0001_c2_b.png", "bounding_box_test/0002_c3_x.jpg"]:
        touch(root, rel)
    (root / "query" / "notes.txt").touch()  # not an image: ignored
    ds = create_dataset("folder", root)
    assert ds.train == [] and not ds.has_time
    assert [(r.pid, r.camid, r.time) for r in ds.gallery] == [(1, 1, 0.0), (2, 2, 0.0)]
    assert ds.num_cams == 3


def test_csv_format(tmp_path):
    root = tmp_path / "lists"
    root.mkdir()
    (root / "train.csv").write_text("path,pid,camid,time\nimgs/a.jpg,7,0,1.5\nimgs/b.jpg,3,1,2\n\n")
    (root / "query.csv").write_text("q/a.jpg,7,0,10\n")
    (root / "gallery.csv").write_text("camid,path,pid,time\n2,/abs/g.jpg,7,11.25\n0,g/x.jpg,-1,0\n")
    ds = create_dataset("csv", root)
    assert ds.train == [
        Record(str(root / "imgs" / "a.jpg"), 1, 0, 1.5),
        Record(str(root / "imgs" / "b.jpg"), 0, 1, 2.0),
    ]
    assert ds.query == [Record(str(root / "q" / "a.jpg"), 7, 0, 10.0)]
    assert ds.gallery == [Record("/abs/g.jpg", 7, 2, 11.25)]  # pid -1 dropped
    assert ds.has_time and ds.num_cams == 3

    single = tmp_path / "train_only.txt"
    single.write_text("x/1.jpg 5 0\nx/2.jpg 6 1\n")
    ds = create_dataset("csv", single)
    assert [(r.pid, r.camid) for r in ds.train] == [(0, 0), (1, 1)] and not ds.has_time
    assert ds.query == [] and ds.gallery == []


def test_malformed_csv_row_names_file_and_line(tmp_path):
    (tmp_path / "query.csv").write_text("path,pid,camid\na.jpg,1,0\nb.jpg,x,0\n")
    with pytest.raises(QAConvError, match=r"query\.csv:3: expected"):
        create_dataset("csv", tmp_path)
    (tmp_path / "query.csv").write_text("file,pid,camid\na.jpg,1,0\n")
    with pytest.raises(QAConvError, match=r"query\.csv:1: header .* lacks column\(s\) path"):
        create_dataset("csv", tmp_path)
    (tmp_path / "query.csv").unlink()
    with pytest.raises(QAConvError, match=r"no train\.csv.*docs/datasets\.md"):
        create_dataset("csv", tmp_path)


def test_docs_csv_example_parses(tmp_path):
    """The CSV example of docs/datasets.md loads as documented."""
    docs = (Path(__file__).resolve().parents[3] / "docs" / "datasets.md").read_text()
    block = docs.split("```\npath,pid,camid,time\n", 1)[1].split("```", 1)[0]
    (tmp_path / "train.csv").write_text("path,pid,camid,time\n" + block)
    ds = create_dataset("csv", tmp_path / "train.csv")
    assert [(r.pid, r.camid, r.time) for r in ds.train] == [(0, 0, 12.5), (0, 3, 40.0), (1, 1, 7.25)]
    assert ds.train[0].path == str(tmp_path / "images" / "0001" / "a.jpg")
    assert ds.train[2].path == "/elsewhere/c.jpg" and ds.has_time
