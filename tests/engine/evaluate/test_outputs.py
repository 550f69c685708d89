"""results.json: read, merged entry by entry, written atomically."""

import json

import pytest

from qaconv.engine import evaluate as ev
from qaconv.errors import QAConvError


def test_read_results_rejects_a_broken_file(tmp_path):
    assert ev.read_results(tmp_path / "results.json") == {}
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(QAConvError, match="results.json exists but is not a readable JSON"):
        ev.read_results(tmp_path / "results.json")
    (tmp_path / "results.json").write_text(json.dumps([1, 2]))
    with pytest.raises(QAConvError, match="holds a JSON list"):
        ev.read_results(tmp_path / "results.json")


def test_merge_result_rereads_the_file_and_keeps_other_entries(tmp_path):
    path = tmp_path / "out" / "results.json"
    ev.merge_result(path, "a", {"raw": {"mAP": 0.1}})
    path.write_text(json.dumps({**json.loads(path.read_text()), "b": {"raw": {"mAP": 0.2}}}))  # another run
    ev.merge_result(path, "a", {"raw": {"mAP": 0.3}})
    assert json.loads(path.read_text()) == {"a": {"raw": {"mAP": 0.3}}, "b": {"raw": {"mAP": 0.2}}}
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "results.json"
    ev.merge_result(path, "a", {"raw": {"mAP": 0.1}})
    before = path.read_text()
    with pytest.raises(TypeError):
        ev.merge_result(path, "b", {"raw": object()})  # not JSON: fails halfway through the dump
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
