"""Gallery index: `qaconv index build` / `qaconv search`, exhaustive and two-stage search, and refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from qaconv.cli import main
from qaconv.engine.checkpoint import state_fingerprint
from qaconv.errors import QAConvError
from qaconv.inference import GalleryIndex, ReID
from qaconv.inference.index import MANIFEST
from qaconv.matching import pairwise_scores


@pytest.fixture(scope="module")
def index(reid, gallery_dir, tmp_path_factory) -> GalleryIndex:
    out = tmp_path_factory.mktemp("index") / "gallery.idx"
    return reid.build_index(gallery_dir, out)


def ranked(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Top-k columns by score, ties by the lower column (numpy's stable sort)."""
    return torch.from_numpy(np.argsort(-scores.numpy(), axis=1, kind="stable")[:, :k].copy())


def test_index_folder_holds_float16_maps_descriptors_paths_and_manifest(index, reid, gallery_images):
    root = index.root
    maps = np.load(root / "maps.npy", mmap_mode="r")
    assert isinstance(maps, np.memmap) and maps.dtype == np.float16 and maps.shape == (len(gallery_images), 16, 4, 2)
    assert json.loads((root / "paths.json").read_text()) == [str(p.resolve()) for p in gallery_images]
    expected = reid.extract(gallery_images)
    np.testing.assert_allclose(maps.astype(np.float32), expected.numpy(), atol=2e-3)
    pooled = expected.numpy().mean(axis=(2, 3))
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    np.testing.assert_allclose(np.load(root / "descriptors.npy"), pooled, atol=1e-5)
    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["fingerprint"] == reid.fingerprint and len(reid.fingerprint) == 64
    assert manifest["model_config"]["neck"] == 16 and manifest["count"] == len(gallery_images)
    assert manifest["checkpoint"] == str(reid.checkpoint) and manifest["maps_dtype"] == "float16"


def test_fingerprint_follows_the_weights(reid, checkpoint, other_checkpoint):
    again = ReID.from_checkpoint(checkpoint / "checkpoint.pt", device="cpu")
    assert again.fingerprint == reid.fingerprint
    assert ReID.from_checkpoint(other_checkpoint, device="cpu").fingerprint != reid.fingerprint
    model, matcher = again.model, again.matcher
    with torch.no_grad():
        matcher.fc.bias.add_(1e-6)
    assert state_fingerprint(model, matcher) != reid.fingerprint


def test_exhaustive_search_equals_ranking_all_scores(reid, index, query_images):
    queries = reid.extract(query_images)
    scores = pairwise_scores(reid.matcher, queries, index.maps.float())
    result = reid.search(queries, index, topk=5)
    torch.testing.assert_close(result.indices, ranked(scores, 5))
    torch.testing.assert_close(result.scores, scores.gather(1, ranked(scores, 5)))
    assert result.paths[0] == [index.paths[j] for j in ranked(scores, 5)[0].tolist()]


def test_two_stage_search_rescores_the_descriptor_shortlist(reid, index, query_images):
    queries = reid.extract(query_images)
    full = reid.search(queries, index, topk=5)
    whole = reid.search(queries, index, topk=5, shortlist=len(index))
    torch.testing.assert_close(whole.indices, full.indices)
    # with 6 candidates: the best 5 of the 6 nearest by descriptor cosine, computed here with numpy
    q = queries.numpy().mean(axis=(2, 3))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    candidates = np.argsort(-(q @ index.descriptors.numpy().T), axis=1, kind="stable")[:, :6]
    scores = pairwise_scores(reid.matcher, queries, index.maps.float()).numpy()
    result = reid.search(queries, index, topk=5, shortlist=6)
    for i, cand in enumerate(candidates):
        best = cand[np.argsort(-scores[i, cand], kind="stable")[:5]]
        assert result.indices[i].tolist() == best.tolist()
    with pytest.raises(QAConvError, match=r"--shortlist \(3\) must be at least --topk \(5\)"):
        reid.search(queries, index, topk=5, shortlist=3)


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


def test_build_refuses_empty_galleries_bad_images_and_foreign_folders(reid, tmp_path, query_images):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(QAConvError, match=f"no images in gallery folder {empty}"):
        reid.build_index(empty, tmp_path / "a.idx")
    with pytest.raises(QAConvError, match="gallery folder not found"):
        reid.build_index(tmp_path / "nowhere", tmp_path / "a.idx")
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(query_images[0], broken / "ok.jpg")
    (broken / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(QAConvError, match=f"{broken / 'bad.jpg'}.*; pass --skip-bad-images"):
        reid.build_index(broken, tmp_path / "b.idx")
    assert not (tmp_path / "b.idx").exists() and not list(tmp_path.glob(".b.idx.partial*"))
    with pytest.raises(QAConvError, match="is a non-empty folder that is not a qaconv index"):
        reid.build_index(tmp_path / "broken", broken)
    shutil.copy(query_images[1], broken / "bad.jpg")
    reid.build_index(broken, tmp_path / "c.idx")
    with pytest.raises(QAConvError, match="already holds an index; pass --overwrite"):
        reid.build_index(broken, tmp_path / "c.idx")
    assert len(reid.build_index([query_images[0]], tmp_path / "c.idx", overwrite=True)) == 1


def test_open_refuses_what_is_not_an_index(tmp_path, index):
    with pytest.raises(QAConvError, match="index not found"):
        GalleryIndex.open(tmp_path / "none")
    with pytest.raises(QAConvError, match="is not a qaconv index: it has no manifest.json"):
        GalleryIndex.open(tmp_path)
    damaged = tmp_path / "damaged"
    shutil.copytree(index.root, damaged)
    (damaged / "paths.json").write_text("[]")
    with pytest.raises(QAConvError, match="is inconsistent: 12 maps, 12 descriptors, 0 paths"):
        GalleryIndex.open(damaged)
    maps = (damaged / "maps.npy").read_bytes()
    (damaged / "maps.npy").write_bytes(maps[: len(maps) // 2])  # truncated: np.load's mmap would fail
    with pytest.raises(QAConvError, match=r"maps.npy is damaged \(.*\); re-build the index"):
        GalleryIndex.open(damaged)
    (damaged / "maps.npy").unlink()
    with pytest.raises(QAConvError, match="maps.npy is missing"):
        GalleryIndex.open(damaged)
    (damaged / MANIFEST).write_text('{"format": "something-else"}')
    with pytest.raises(QAConvError, match="unsupported index format 'something-else'"):
        GalleryIndex.open(damaged)


def test_cli_build_names_an_empty_gallery(checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = main(
        [
            "index",
            "build",
            "--gallery",
            str(tmp_path / "empty"),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(tmp_path / "idx"),
            "--device",
            "cpu",
        ]
    )
    assert rc == 2
    assert f"no images in gallery folder {tmp_path / 'empty'}" in capsys.readouterr().err


def test_skip_bad_images_indexes_the_others_and_names_the_skipped(checkpoint, query_images, tmp_path, capsys):
    gallery = tmp_path / "gallery"
    (gallery / "sub").mkdir(parents=True)
    shutil.copy(query_images[0], gallery / "a.jpg")
    shutil.copy(query_images[1], gallery / "sub" / "b.jpg")
    (gallery / "empty.jpg").write_bytes(b"")
    (gallery / "sub" / "cut.jpg").write_bytes(query_images[2].read_bytes()[:200])
    (gallery / ".hidden.jpg").write_bytes(b"")  # hidden files are not gallery images
    out = tmp_path / "idx"
    build = ["index", "build", "--gallery", str(gallery), "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main([*build, "--device", "cpu"]) == 2
    assert "--skip-bad-images" in capsys.readouterr().err and not out.exists()
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\): .*empty.jpg, .*cut.jpg"):
        assert main([*build, "--device", "cpu", "--skip-bad-images"]) == 0
    captured = capsys.readouterr()
    assert "indexed 2 images" in captured.out and "2 unreadable image(s) skipped" in captured.out
    assert captured.err == ""  # no progress bar when stderr is not a terminal
    index = GalleryIndex.open(out)
    assert index.paths == [str(gallery / "a.jpg"), str(gallery / "sub" / "b.jpg")]
    assert index.manifest["skipped"] == [str(gallery / "empty.jpg"), str(gallery / "sub" / "cut.jpg")]
    assert index.maps.shape == (2, 16, 4, 2) and index.descriptors.shape == (2, 16)
    np.testing.assert_allclose(
        index.maps.float().numpy(), ReID.from_checkpoint(checkpoint, device="cpu").extract(index.paths), atol=2e-3
    )


def test_a_killed_build_leaves_nothing_for_good(reid, gallery_images, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".g.idx.partial-{dead.pid}"  # what kill -9 during a build leaves behind
    stale.mkdir()
    (stale / "maps.npy").write_bytes(b"\0" * 1000)
    reid.build_index(gallery_images[:2], tmp_path / "g.idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.idx"]


def test_search_says_when_the_checkpoint_changed_since_the_build(reid, other_checkpoint, gallery_images, tmp_path):
    path = tmp_path / "checkpoint.pt"
    shutil.copy(reid.checkpoint, path)
    ReID.from_checkpoint(path, device="cpu").build_index(gallery_images[:3], tmp_path / "g.idx")
    shutil.copy(other_checkpoint, path)  # retrained in place
    with pytest.raises(QAConvError, match=f"the checkpoint {path} changed since index .*g.idx was built from it"):
        ReID.from_checkpoint(path, device="cpu").search(gallery_images[0], GalleryIndex.open(tmp_path / "g.idx"))


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


def test_a_second_build_of_a_locked_index_refuses_at_once(reid, gallery_images, tmp_path):
    from qaconv.lock import FolderLock

    refused = pytest.raises(QAConvError, match=r"g.idx is in use by another qaconv process \(pid \d+, qaconv index")
    with FolderLock.beside(tmp_path / "g.idx", "qaconv index build"), refused:
        reid.build_index(gallery_images[:2], tmp_path / "g.idx")
    reid.build_index(gallery_images[:2], tmp_path / "g.idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.idx"]  # no lock file left


def test_a_full_disk_stops_a_build_with_one_line_and_keeps_the_old_index(reid, gallery_images, tmp_path, monkeypatch):
    out = tmp_path / "g.idx"
    reid.build_index(gallery_images[:2], out)

    def no_space(fd, offset, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)  # the maps are allocated before any is written
    with pytest.raises(QAConvError, match=r"cannot write .*g.idx: the disk is full .*the previous g.idx is kept"):
        reid.build_index(gallery_images[:3], out, overwrite=True)
    assert len(GalleryIndex.open(out)) == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["g.idx"]
