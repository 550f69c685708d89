"""Folders that know what they are: the one output-folder check, markers, unmarked folders, inputs of a kind."""

import json

import pytest

from qaconv.errors import QAConvError
from qaconv.folders import DATASET, EXPORT, INDEX, MARKER, RUN, check_output, expect_kind, kind_of, mark


def test_the_output_check_refuses_what_it_may_not_replace(tmp_path):
    def check(out, overwrite=False):
        return check_output(out, EXPORT, "--out", overwrite=overwrite, own=["export.json", "m.pt"])

    assert check(tmp_path / "a" / "b") == tmp_path / "a" / "b" and (tmp_path / "a").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(QAConvError, match="exists and is not a folder"):
        check(tmp_path / "file")
    with pytest.raises(QAConvError, match=r"cannot create the folder .* \(a file is in the way"):
        check(tmp_path / "file" / "sub")
    done = tmp_path / "done"
    done.mkdir()
    (done / "export.json").write_text("{}")
    with pytest.raises(QAConvError, match="already holds an export; pass --overwrite"):
        check(done)
    assert check(done, overwrite=True) == done
    (done / "notes.md").write_text("mine")
    with pytest.raises(QAConvError, match=r"holds files that are not part of an export \(notes.md\)"):
        check(done, overwrite=True)
    with pytest.raises(QAConvError, match="non-empty folder that is not a qaconv export"):
        check(tmp_path)


@pytest.mark.parametrize(
    ("files", "kind"),
    [
        (["checkpoint.pt", "config.yaml", "results.json"], RUN),
        (["manifest.json", "maps.npy"], INDEX),
        (["meta.json", "bounding_box_train"], DATASET),
        (["list_train.txt", "train"], DATASET),
        (["export.json"], EXPORT),
        (["notes.txt"], None),
        ([], None),
    ],
)
def test_an_unmarked_folder_is_known_by_the_files_only_its_kind_writes(tmp_path, files, kind):
    for name in files:
        (tmp_path / name).write_text("")
    assert kind_of(tmp_path) is kind


def test_a_marker_says_the_kind_whatever_the_folder_holds(tmp_path):
    mark(tmp_path, INDEX)
    (tmp_path / "checkpoint.pt").write_text("")
    assert kind_of(tmp_path) is INDEX
    assert json.loads((tmp_path / MARKER).read_text())["kind"] == "index"
    (tmp_path / MARKER).write_text("not json")
    assert kind_of(tmp_path) is None and kind_of(tmp_path / "missing") is None


@pytest.mark.parametrize(("kind", "writer"), [(DATASET, RUN), (RUN, DATASET), (INDEX, RUN), (RUN, INDEX)])
def test_a_command_that_writes_refuses_a_folder_of_another_kind_even_with_overwrite(tmp_path, kind, writer):
    mark(tmp_path, kind)
    with pytest.raises(QAConvError, match=f"--out {tmp_path} is a qaconv {kind.name} folder, not {writer.a}"):
        check_output(tmp_path, writer, "--out", overwrite=True, own=["x"])


def test_an_input_of_the_wrong_kind_is_named_for_what_it_is(tmp_path):
    mark(tmp_path, DATASET)
    with pytest.raises(QAConvError, match=f"--index {tmp_path} is a qaconv data set folder, not an index"):
        expect_kind(tmp_path, "--index", [INDEX], "an index")
    expect_kind(tmp_path, "--dataset", [DATASET], "a data set")
    expect_kind(tmp_path / "not-a-qaconv-folder", "--index", [INDEX], "an index")
