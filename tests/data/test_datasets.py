"""Data set loaders: parity with the reference records, layout variants, custom formats and errors."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import pytest

from qaconv.data import Record, ReIDDataset, create_dataset, dataset_names, find_dataset_root
from qaconv.errors import QAConvError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "datasets.json"
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


# ------------------------------------------------------------------------------------------ parity


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


def test_randperson_matches_reference(tmp_path):
    ref = REFERENCE["randperson"]
    root = build_tree(tmp_path / "randperson", ref)
    ds = create_dataset("randperson", root)
    assert_records(ds.train, ref["train"], root, "randperson_subset/")
    assert ds.query == [] and ds.gallery == []
    assert ds.has_time
    assert create_dataset("randperson", root, combine_all=True).train == ds.train  # accepted, no-op


# ---------------------------------------------------------------------------------- other data sets


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


def test_train_relabel_is_sorted_and_deterministic(tmp_path):
    root = tmp_path / "mine"
    for rel in ["bounding_box_train/10_c1_0.jpg", "bounding_box_train/9_c2_0.jpg", "bounding_box_train/100_c1_1.jpg"]:
        touch(root, rel)
    ds = create_dataset("folder", root)
    assert {os.path.basename(r.path): r.pid for r in ds.train} == {"10_c1_0.jpg": 1, "100_c1_1.jpg": 2, "9_c2_0.jpg": 0}


# ------------------------------------------------------------------------------------ layout variants


def test_market_one_level_down_and_aliases(tmp_path):
    ref = REFERENCE["market1501"]
    build_tree(tmp_path / "market1501" / "Market-1501-v15.09.15", ref)
    ds = create_dataset("Market", tmp_path / "market1501")
    assert ds.name == "market1501"
    assert ds.root == str(tmp_path / "market1501" / "Market-1501-v15.09.15")
    assert len(ds.train) == len(ref["train"])
    for alias in ("market", "MARKET1501", "market-1501"):
        assert create_dataset(alias, ds.root).train == ds.train


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


# ---------------------------------------------------------------------------------- custom formats


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


# ------------------------------------------------------------------------------------------ errors


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


def test_unparsable_randperson_scene(tmp_path):
    root = build_tree(tmp_path / "randperson", REFERENCE["randperson"])
    touch(root, "randperson_subset/000001_s11_c00_f000001.jpg")  # there are 11 scenes: 0..10
    touch(root, "randperson_subset/000001_c00_s04_f000001.jpg")  # an old README's order: c before s
    with pytest.raises(QAConvError, match="2 file name"):
        create_dataset("randperson", root)


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


# ----------------------------------------------------------------------------------- container


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


def test_docs_csv_example_parses(tmp_path):
    """The CSV example of docs/datasets.md loads as documented."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "datasets.md").read_text()
    block = docs.split("```\npath,pid,camid,time\n", 1)[1].split("```", 1)[0]
    (tmp_path / "train.csv").write_text("path,pid,camid,time\n" + block)
    ds = create_dataset("csv", tmp_path / "train.csv")
    assert [(r.pid, r.camid, r.time) for r in ds.train] == [(0, 0, 12.5), (0, 3, 40.0), (1, 1, 7.25)]
    assert ds.train[0].path == str(tmp_path / "images" / "0001" / "a.jpg")
    assert ds.train[2].path == "/elsewhere/c.jpg" and ds.has_time


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
