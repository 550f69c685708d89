"""Galleries in shards: exact merging, splitting by folder, camera and size, updating only what changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from qaconv.errors import QAConvError
from qaconv.inference import GalleryIndex, ReID
from qaconv.inference.images import gallery_files
from qaconv.inference.shards import Gallery, build_shards, merge_topk, split, update_shards


def test_merge_keeps_the_top_k_by_score_then_position() -> None:
    first = (torch.tensor([[0, 1, 2]]), torch.tensor([[5.0, 3.0, 1.0]]))
    second = (torch.tensor([[10, 11, 12]]), torch.tensor([[4.0, 3.0, 2.0]]))
    positions, scores = merge_topk([second, first], 4)  # shard order does not matter: positions decide ties
    assert positions.tolist() == [[0, 10, 1, 11]]
    assert scores.tolist() == [[5.0, 4.0, 3.0, 3.0]]


def test_merging_per_shard_top_k_equals_one_top_k() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 20, (5, 300), generator=generator).float()  # many ties
    truth = scores.sort(dim=1, descending=True, stable=True)
    parts = []
    for start in range(0, 300, 70):
        block = scores[:, start : start + 70]
        top = block.sort(dim=1, descending=True, stable=True)
        parts.append((top.indices[:, :10] + start, top.values[:, :10]))
    positions, merged = merge_topk(parts, 10)
    assert torch.equal(positions, truth.indices[:, :10]) and torch.equal(merged, truth.values[:, :10])


def test_split_by_folder_camera_and_size(tmp_path) -> None:
    root = str(tmp_path)
    paths = [f"{root}/a/0001_c1_1.jpg", f"{root}/a/0002_c2_1.jpg", f"{root}/b/0001_c2_2.jpg", f"{root}/0003_c1_1.jpg"]
    assert split(paths, root, "folder", None) == {"_top": [paths[3]], "a": paths[:2], "b": [paths[2]]}
    assert split(paths, root, "camera", None) == {"camera-01": [paths[0], paths[3]], "camera-02": paths[1:3]}
    assert split(paths, root, "size", 3) == {"shard-0000": paths[:3], "shard-0001": [paths[3]]}
    # growing by size: images stay in their shard, new ones fill the last one, then a new one
    grown = split([*paths, f"{root}/c/new1.jpg", f"{root}/c/new2.jpg", f"{root}/c/new3.jpg"], root, "size", 3,
                  {"shard-0000": paths[:3], "shard-0001": [paths[3]]})  # fmt: skip
    assert grown == {
        "shard-0000": paths[:3],
        "shard-0001": [paths[3], f"{root}/c/new1.jpg", f"{root}/c/new2.jpg"],
        "shard-0002": [f"{root}/c/new3.jpg"],
    }
    with pytest.raises(QAConvError, match="names no camera"):
        split([f"{root}/IMG_1.jpg"], root, "camera", None)
    with pytest.raises(QAConvError, match="--shard-size"):
        split(paths, root, "size", None)


@pytest.fixture(scope="module")
def reid(checkpoint) -> ReID:
    return ReID.from_checkpoint(checkpoint)


def test_a_shard_set_searches_like_one_index_of_its_images(reid, gallery_dir, tmp_path) -> None:
    shards = build_shards(reid, gallery_dir, tmp_path / "shards", shard_by="camera", first_stage="none")
    assert [s.root.name for s in shards.shards] == ["camera-01", "camera-02"]
    whole = reid.build_index(shards.paths, tmp_path / "whole", first_stage="none")  # the shards' order
    query = sorted((gallery_dir.parent / "query").glob("*.jpg"))[:3]
    sharded, single = reid.search(query, shards, topk=7), reid.search(query, whole, topk=7)
    assert sharded.paths == single.paths
    assert torch.allclose(sharded.scores, single.scores, atol=1e-5)
    assert torch.equal(sharded.indices, single.indices)
    # several folders are one gallery too
    two = Gallery.open([tmp_path / "shards" / "camera-01", tmp_path / "shards" / "camera-02"])
    assert reid.search(query, two, topk=7).paths == single.paths


def test_an_update_redoes_only_the_shards_that_changed(reid, gallery_dir, tmp_path) -> None:
    gallery = tmp_path / "gallery"
    shutil.copytree(gallery_dir, gallery)
    build_shards(reid, gallery, tmp_path / "shards", shard_by="camera", first_stage="none")
    untouched = tmp_path / "shards" / "camera-01" / "maps.npy"
    before = untouched.stat().st_mtime_ns
    camera2 = sorted(gallery.glob("*_c2*.jpg"))
    shutil.copy(camera2[0], gallery / "0999_c2s1_000001_01.jpg")  # a new image of camera 2
    camera2[1].unlink()  # and one gone
    updated, counts = update_shards(reid, tmp_path / "shards")
    assert counts["added"] == 1 and counts["removed"] == 1 and counts["shards updated"] == 1
    assert untouched.stat().st_mtime_ns == before
    assert sorted(updated.paths) == sorted(gallery_files(gallery)[1])
    shutil.copy(camera2[0], gallery / "0998_c3s1_000001_01.jpg")  # a new camera: a new shard
    updated, counts = update_shards(reid, tmp_path / "shards")
    assert [s.root.name for s in updated.shards] == ["camera-01", "camera-02", "camera-03"]
    assert counts["added"] == 1 and counts["shards updated"] == 1


def test_shards_of_other_models_are_refused(reid, checkpoint, other_checkpoint, gallery_dir, tmp_path) -> None:
    reid.build_index(gallery_dir, tmp_path / "a", first_stage="none")
    ReID.from_checkpoint(other_checkpoint).build_index(gallery_dir, tmp_path / "b", first_stage="none")
    with pytest.raises(QAConvError, match="different checkpoints"):
        Gallery.open([tmp_path / "a", tmp_path / "b"])


def test_an_index_with_a_first_stage_searches_through_it(reid, gallery_dir, tmp_path) -> None:
    pytest.importorskip("faiss")
    index = reid.build_index(gallery_dir, tmp_path / "fast", first_stage="locations")
    assert index.manifest["first_stage"]["candidates"] == len(index)  # a tiny gallery: every entry a candidate
    assert (Path(index.root) / "locations.npz").is_file()
    query = sorted((gallery_dir.parent / "query").glob("*.jpg"))[:2]
    fast = reid.search(query, index, topk=5)
    exact = reid.search(query, index, topk=5, first_stage="none")
    assert fast.paths == exact.paths
    # an update keeps the first stage, encoded with the trained centroids
    updated, _ = reid.update_index(tmp_path / "fast")
    assert updated.manifest["first_stage"] == index.manifest["first_stage"]
    assert reid.search(query, updated, topk=5).paths == exact.paths
    # a first stage written by another version of qaconv (other settings) is refused with the advice to re-build
    manifest = Path(index.root) / "manifest.json"
    record = json.loads(manifest.read_text())
    record["first_stage"] = {"lists": 16, "sub_quantizers": 8, "probes": 8, "per_location": 512, "candidates": 400}
    manifest.write_text(json.dumps(record))
    with pytest.raises(QAConvError, match="another version of qaconv; re-build"):
        GalleryIndex.open(index.root)
