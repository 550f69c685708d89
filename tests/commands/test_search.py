"""`qaconv search`: the ranked list printed and written as JSON and HTML with the checkpoint the index records,
refusals of an index built with another checkpoint or whose checkpoint is gone, and output files checked first."""

from __future__ import annotations

import json
import shutil

import pytest

from qaconv.cli import main
from qaconv.inference import GalleryIndex
from qaconv.inference.index import MANIFEST


def test_cli_build_and_search_with_the_recorded_checkpoint(
    checkpoint, gallery_dir, query_images, tmp_path, capsys, reid
):
    out = tmp_path / "idx"
    assert (
        main(
            [
                "index",
                "build",
                "--gallery",
                str(gallery_dir),
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "indexed 12 images (16x4x2 float16 maps" in capsys.readouterr().out
    page, record = tmp_path / "r.html", tmp_path / "r.json"
    assert (
        main(
            [
                "search",
                "--index",
                str(out),
                "--query",
                str(query_images[0]),
                str(query_images[1]),
                "--topk",
                "3",
                "--html",
                str(page),
                "--json",
                str(record),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"query {query_images[0]}" and lines[4] == f"query {query_images[1]}"
    expected = reid.search(query_images[:2], GalleryIndex.open(out), topk=3)
    rank1 = lines[1].split()
    assert rank1[0] == "1" and rank1[2] == expected.paths[0][0]
    assert float(rank1[1]) == pytest.approx(expected.scores[0, 0].item(), abs=1e-4)
    data = json.loads(record.read_text())
    assert data["search"] == "exhaustive" and [r["path"] for r in data["queries"][1]["results"]] == expected.paths[1]
    assert page.read_text().count("data:image/jpeg;base64,") == 2 * (1 + 3)


def test_search_refuses_an_index_built_with_another_checkpoint(index, other_checkpoint, query_images, capsys):
    rc = main(
        [
            "search",
            "--index",
            str(index.root),
            "--query",
            str(query_images[0]),
            "--checkpoint",
            str(other_checkpoint),
            "--device",
            "cpu",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert f"index {index.root} was built with another checkpoint" in err and "fingerprint" in err
    assert "differs from" in err and str(other_checkpoint) in err


def test_search_needs_a_checkpoint_when_the_recorded_one_is_gone(index, tmp_path, query_images, capsys):
    moved = tmp_path / "moved.idx"
    shutil.copytree(index.root, moved)
    manifest = json.loads((moved / MANIFEST).read_text())
    manifest["checkpoint"] = str(tmp_path / "gone.pt")
    (moved / MANIFEST).write_text(json.dumps(manifest))
    assert main(["search", "--index", str(moved), "--query", str(query_images[0])]) == 2
    err = capsys.readouterr().err
    assert f"records checkpoint {tmp_path / 'gone.pt'}, which is not found; pass --checkpoint" in err


def test_search_checks_its_output_files_before_searching(index, query_images, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    base = ["search", "--index", str(index.root), "--query", str(query_images[0]), "--device", "cpu"]
    for option in ("--json", "--html"):
        assert main([*base, option, str(tmp_path / "file" / "r.out")]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and f"{option} " in captured.err and "cannot create the folder" in captured.err
    record = tmp_path / "new" / "deep" / "r.json"
    assert main([*base, "--json", str(record)]) == 0
    assert json.loads(record.read_text())["queries"][0]["query"] == str(query_images[0].resolve())


def search_json(tmp_path, *indexes, extra=(), query=None) -> dict:
    record = tmp_path / "result.json"
    args = ["search", "--index", *map(str, indexes), "--query", *map(str, query), "--topk", "4", "--json", str(record)]
    assert main([*args, "--device", "cpu", *extra]) == 0
    return json.loads(record.read_text())


def test_shards_and_several_indexes_search_as_one_index(checkpoint, gallery_dir, query_images, tmp_path, reid,
                                                         capsys):  # fmt: skip
    shards = tmp_path / "shards"
    build = ["index", "build", "--gallery", str(gallery_dir), "--checkpoint", str(checkpoint), "--device", "cpu"]
    assert main([*build, "--out", str(shards), "--shard-by", "camera"]) == 0
    out = capsys.readouterr().out
    assert "images in 2 shards" in out and "camera-01" in out and "camera-02" in out
    in_order = GalleryIndex.open(shards / "camera-01").paths + GalleryIndex.open(shards / "camera-02").paths
    whole = reid.build_index(in_order, tmp_path / "whole")
    one = search_json(tmp_path, whole.root, query=query_images[:2])
    as_set = search_json(tmp_path, shards, query=query_images[:2])
    as_list = search_json(tmp_path, shards / "camera-01", shards / "camera-02", query=query_images[:2])
    ranked = [[r["path"] for r in q["results"]] for q in one["queries"]]
    assert [[r["path"] for r in q["results"]] for q in as_set["queries"]] == ranked
    assert [[r["path"] for r in q["results"]] for q in as_list["queries"]] == ranked
    assert as_set["index"].startswith("2 shards")


def test_an_index_with_a_first_stage_is_searched_through_it_unless_told(checkpoint, gallery_dir, query_images,
                                                                         tmp_path):  # fmt: skip
    pytest.importorskip("faiss")
    index = tmp_path / "fast"
    build = ["index", "build", "--gallery", str(gallery_dir), "--checkpoint", str(checkpoint), "--out", str(index)]
    assert main([*build, "--first-stage", "locations", "--device", "cpu"]) == 0
    assert (index / "locations.npz").is_file()
    fast = search_json(tmp_path, index, query=query_images[:1])
    exact = search_json(tmp_path, index, query=query_images[:1], extra=("--first-stage", "none"))
    assert fast["search"] == "location first stage, re-scored by QAConv" and exact["search"] == "exhaustive"
    assert fast["queries"] == exact["queries"]  # a tiny gallery: every entry is a candidate


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--first-stage", "faiss"), "--first-stage"),
        (("--shard-by", "size"), "--shard-by size needs --shard-size"),
        (("--shard-by", "colour"), "--shard-by"),
        (("--shard-size", "0"), "--shard-size"),
    ],
)
def test_bad_index_options_are_refused_before_work(checkpoint, gallery_dir, tmp_path, capsys, extra, message):
    out = str(tmp_path / "i")
    build = ["index", "build", "--gallery", str(gallery_dir), "--checkpoint", str(checkpoint), "--out", out]
    assert main([*build, *extra]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "i").exists()
