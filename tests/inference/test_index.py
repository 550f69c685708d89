"""Gallery index: its folder, exhaustive and two-stage search, refusals, and `update_index` noticing images changed
on disk and bringing the index up to date without re-extracting the images that did not change. The commands
`qaconv index` and `qaconv search` are tested in tests/commands/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from qaconv.engine.checkpoint import state_fingerprint
from qaconv.errors import QAConvError
from qaconv.inference import GalleryIndex, ReID
from qaconv.inference.index import MANIFEST
from qaconv.matching import pairwise_scores


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


# ------------------------------------------------------------------------------------------ keeping up to date


def fresh_equals(reid, index, tmp_path):
    """The index holds what a fresh build of its gallery holds: the same paths in the same order, the same maps
    (up to the rounding that another batch composition gives an extraction)."""
    fresh = reid.build_index(index.manifest["gallery"], tmp_path / "fresh.idx")
    assert index.paths == fresh.paths
    np.testing.assert_allclose(index.maps.numpy().astype(np.float32), fresh.maps.numpy().astype(np.float32), atol=2e-3)
    np.testing.assert_allclose(index.descriptors.numpy(), fresh.descriptors.numpy(), atol=1e-4)
    shutil.rmtree(tmp_path / "fresh.idx")


def test_an_index_finds_images_replaced_edited_or_removed_since_it_was_built(reid, gallery, tmp_path):
    index = reid.build_index(gallery, tmp_path / "g.idx")
    assert not index.changes() and index.stats.shape == (len(index), 2)
    first, second, third = (index.paths[i] for i in range(3))
    shutil.copyfile(index.paths[5], first)  # replaced by another picture
    with Image.open(second) as image:
        image.transpose(Image.FLIP_LEFT_RIGHT).save(second, quality=70)  # edited
    os.remove(third)
    changes = GalleryIndex.open(tmp_path / "g.idx").changes()
    assert sorted(changes.changed) == sorted([first, second]) and changes.missing == [third]
    assert "2 image(s) changed and 1 removed" in changes.describe(tmp_path / "g.idx")


def test_update_extracts_only_new_and_changed_images_and_drops_removed_ones(reid, gallery, tmp_path, monkeypatch):
    index = reid.build_index(gallery, tmp_path / "g.idx")
    names = sorted(os.listdir(gallery))
    os.remove(gallery / names[0])
    shutil.copyfile(gallery / names[3], gallery / names[1])  # changed
    Image.open(gallery / names[2]).save(gallery / "zz_new.jpg")  # added
    extracted = []
    original = type(reid)._index_images

    def counting(self, writer, paths, *args, **kwargs):
        extracted.extend(paths)
        return original(self, writer, paths, *args, **kwargs)

    monkeypatch.setattr(type(reid), "_index_images", counting)
    updated, counts = reid.update_index(tmp_path / "g.idx")
    assert counts == {"added": 1, "removed": 1, "changed": 1, "kept": len(index) - 2}
    assert sorted(extracted) == sorted([str(gallery / names[1]), str(gallery / "zz_new.jpg")])
    assert not updated.changes()
    monkeypatch.setattr(type(reid), "_index_images", original)
    fresh_equals(reid, updated, tmp_path)


def test_an_unchanged_gallery_updates_to_the_same_index(reid, gallery, tmp_path):
    index = reid.build_index(gallery, tmp_path / "g.idx")
    updated, counts = reid.update_index(tmp_path / "g.idx")
    assert counts == {"added": 0, "removed": 0, "changed": 0, "kept": len(index)}
    np.testing.assert_array_equal(updated.maps.numpy(), index.maps.numpy())


def test_update_refuses_another_model_and_an_index_of_a_file_list(reid, other_checkpoint, gallery, tmp_path):
    from qaconv.inference import ReID

    reid.build_index(gallery, tmp_path / "g.idx")
    with pytest.raises(QAConvError, match="was built with another checkpoint"):
        ReID.from_checkpoint(other_checkpoint).update_index(tmp_path / "g.idx")
    reid.build_index(sorted(str(p) for p in gallery.iterdir())[:4], tmp_path / "list.idx")
    with pytest.raises(QAConvError, match="built from a list of files: give the gallery"):
        reid.update_index(tmp_path / "list.idx")
