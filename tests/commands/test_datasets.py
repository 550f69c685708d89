"""`qaconv datasets --data-dir DIR` on a small tree of empty files."""

from __future__ import annotations

from qaconv.cli import main
from tests.data.datasets.conftest import REFERENCE, build_tree


def _counts(layout: dict) -> list[str]:
    return [f"{len({r[1] for r in layout[s]})}/{len(layout[s])}" for s in ("train", "query", "gallery")]


def _line(out: str, name: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.startswith(name + " "))


def test_datasets_command_lists_found_and_missing(tmp_path, capsys):
    build_tree(tmp_path / "Market-1501-v15.09.15", REFERENCE["market1501"])
    build_tree(tmp_path / "cuhk03-np" / "labeled", REFERENCE["cuhk03_np"])
    build_tree(tmp_path / "msmt17", REFERENCE["msmt17"])
    (tmp_path / "randperson" / "randperson_subset").mkdir(parents=True)
    (tmp_path / "randperson" / "randperson_subset" / "bad_name.jpg").touch()

    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out

    assert _counts(REFERENCE["market1501"]) == ["13/29", "13/22", "14/27"]
    assert _line(out, "market1501") == [
        "market1501",
        "found",
        *_counts(REFERENCE["market1501"]),
        "6",
        "yes",
        "Market-1501-v15.09.15",
    ]
    assert _line(out, "cuhk03_np_labeled") == [
        "cuhk03_np_labeled",
        "found",
        *_counts(REFERENCE["cuhk03_np"]),
        "2",
        "no",
        "cuhk03-np/labeled",
    ]
    assert _line(out, "msmt17") == ["msmt17", "found", *_counts(REFERENCE["msmt17"]), "15", "no", "msmt17"]
    assert _line(out, "cuhk03_np_detected")[1] == "missing"
    assert _line(out, "clonedperson")[1] == "missing"
    assert _line(out, "randperson")[1] == "error"
    assert "randperson: randperson: 1 file name(s) do not match" in out
    assert "clonedperson: looked for clonedperson/, ClonedPerson/" in out


def test_datasets_command_missing_data_dir(tmp_path, capsys):
    assert main(["datasets", "--data-dir", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qaconv datasets: error: data dir not found") and err.count("\n") == 1


def test_datasets_command_data_dir_is_a_file(tmp_path, capsys):
    (tmp_path / "meta.json").write_text("{}")
    assert main(["datasets", "--data-dir", str(tmp_path / "meta.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qaconv datasets: error: data dir is not a folder") and err.count("\n") == 1


def test_datasets_command_names_what_an_incomplete_folder_lacks(tmp_path, capsys):
    (tmp_path / "market1501" / "bounding_box_train").mkdir(parents=True)
    (tmp_path / "cuhk03-np" / "labeled").mkdir(parents=True)  # a wrapper shared by both variants, empty
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert _line(out, "market1501")[1:] == ["incomplete", "-", "-", "-", "-", "-", "market1501"]
    assert "market1501: market1501/ lacks bounding_box_test/, query/; expected bounding_box_train/" in out
    assert _line(out, "cuhk03_np_detected")[1] == "missing"
