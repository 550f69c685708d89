"""`qaconv index build` and `update` with the galleries users have: bombs, damaged files, links, other folders
(audit cases B1-B12 of docs/reliability.md); an empty gallery named, bad images skipped on request, and an index
mended by `update` after its images changed."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from qaconv.cli import main
from qaconv.folders import DATASET, RUN, mark
from qaconv.inference import GalleryIndex, ReID
from tests.commands.images import png_bomb


def build(checkpoint, gallery, out, *extra):
    return main(["index", "build", "--gallery", str(gallery), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--device", "cpu", *extra])  # fmt: skip


@pytest.mark.parametrize(
    ("name", "write", "reason"),
    [
        ("bomb.png", lambda p: png_bomb(p, 20_000), "20000 x 20000 pixels"),
        ("empty.jpg", lambda p: p.write_bytes(b""), "not an image file"),
        ("notes.png", lambda p: p.write_text("text"), "not an image file"),
        ("cut.jpg", None, "cannot read image"),
    ],
)
def test_b1_to_b4_an_unreadable_gallery_image_is_named_and_skipped_on_request(checkpoint, gallery, tmp_path, capsys,
                                                                              name, write, reason):  # fmt: skip
    path = gallery / name
    if write is None:
        path.write_bytes(next(gallery.glob("*.jpg")).read_bytes()[:300])
    else:
        write(path)
    assert build(checkpoint, gallery, tmp_path / "idx") == 2
    err = capsys.readouterr().err
    assert str(path) in err and "--skip-bad-images" in err and err.count("\n") == 1
    if write is not None:
        assert reason in err
    with pytest.warns(UserWarning, match=f"skipped 1 unreadable image.*{name}"):
        assert build(checkpoint, gallery, tmp_path / "idx", "--skip-bad-images") == 0
    assert str(path) not in GalleryIndex.open(tmp_path / "idx").paths


def test_b5_a_folder_named_like_an_image_is_a_folder_not_an_unreadable_image(checkpoint, gallery, tmp_path):
    (gallery / "more.jpg").mkdir()
    shutil.copy(next(gallery.glob("*.jpg")), gallery / "more.jpg" / "inside.jpg")
    assert build(checkpoint, gallery, tmp_path / "idx") == 0
    assert str(gallery / "more.jpg" / "inside.jpg") in GalleryIndex.open(tmp_path / "idx").paths


def test_b6_a_symlink_loop_is_named_and_not_followed(checkpoint, gallery, tmp_path):
    os.symlink(gallery, gallery / "again")  # a link back to the gallery itself
    os.symlink(gallery / "nowhere", gallery / "dangling.jpg")  # a link to nothing
    with pytest.warns(UserWarning, match=f"{gallery / 'again'} leads back to a folder already listed"):
        assert build(checkpoint, gallery, tmp_path / "idx") == 0
    paths = GalleryIndex.open(tmp_path / "idx").paths
    assert not any("again" in p or "dangling" in p for p in paths)


@pytest.mark.parametrize("kind", [RUN, DATASET])
def test_b7_b8_an_index_is_not_written_into_a_folder_of_another_kind(checkpoint, gallery, tmp_path, capsys, kind):
    folder = tmp_path / "taken"
    folder.mkdir()
    mark(folder, kind)
    assert build(checkpoint, gallery, folder, "--overwrite") == 2
    assert f"is a qaconv {kind.name} folder, not an index" in capsys.readouterr().err


def test_b9_an_index_built_before_file_statistics_searches_and_updates_in_full(checkpoint, gallery, tmp_path,
                                                                               query_images, capsys):  # fmt: skip
    assert build(checkpoint, gallery, tmp_path / "idx") == 0
    (tmp_path / "idx" / "stats.npy").unlink()
    index = GalleryIndex.open(tmp_path / "idx")
    assert index.stats is None and index.changes().unknown and not index.changes()
    assert main(["search", "--index", str(tmp_path / "idx"), "--query", str(query_images[0])]) == 0
    assert main(["index", "update", "--index", str(tmp_path / "idx")]) == 0
    assert f"0 added, {len(index)} changed, 0 removed, 0 kept" in capsys.readouterr().out
    assert GalleryIndex.open(tmp_path / "idx").stats is not None


def test_b10_update_with_images_added_changed_and_removed(checkpoint, gallery, tmp_path, capsys):
    assert build(checkpoint, gallery, tmp_path / "idx") == 0
    files = sorted(gallery.glob("*.jpg"))
    shutil.copy(files[0], gallery / "new.jpg")
    shutil.copy(files[2], files[1])
    files[3].unlink()
    assert main(["index", "update", "--index", str(tmp_path / "idx"), "--device", "cpu"]) == 0
    assert "1 added, 1 changed, 1 removed" in capsys.readouterr().out


def test_b11_update_of_an_index_built_from_a_file_list_asks_for_the_gallery(checkpoint, reid, gallery, tmp_path,
                                                                            capsys):  # fmt: skip
    reid.build_index([str(p) for p in sorted(gallery.glob("*.jpg"))[:3]], tmp_path / "idx")
    assert main(["index", "update", "--index", str(tmp_path / "idx")]) == 2
    assert "give the gallery to update from" in capsys.readouterr().err
    assert main(["index", "update", "--index", str(tmp_path / "idx"), "--gallery", str(gallery)]) == 0


def test_b12_update_refuses_a_folder_that_is_not_an_index(tmp_path, capsys):
    mark(tmp_path, RUN)
    assert main(["index", "update", "--index", str(tmp_path)]) == 2
    assert "is a qaconv run folder, not an index" in capsys.readouterr().err


# --------------------------------------------------------------------------------- building, skipping, updating


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


def test_search_warns_or_refuses_when_images_changed_and_index_update_mends_it(checkpoint, gallery, tmp_path,
                                                                                query_images, capsys):  # fmt: skip
    idx = tmp_path / "g.idx"
    assert main(["index", "build", "--gallery", str(gallery), "--checkpoint", str(checkpoint), "--out", str(idx)]) == 0
    os.remove(sorted(gallery.iterdir())[0])
    search = ["search", "--index", str(idx), "--query", str(query_images[0]), "--topk", "2"]
    with pytest.warns(UserWarning, match=r"0 image\(s\) changed and 1 removed since they were indexed"):
        assert main(search) == 0
    assert main([*search, "--if-changed", "refuse"]) == 2
    err = capsys.readouterr().err
    assert "0 image(s) changed and 1 removed" in err and "qaconv index update" in err and err.count("\n") == 1
    assert main(["index", "update", "--index", str(idx)]) == 0
    assert "0 added, 0 changed, 1 removed" in capsys.readouterr().out
    assert main([*search, "--if-changed", "refuse"]) == 0


def test_update_of_a_shard_set_redoes_only_the_shards_concerned(checkpoint, gallery, tmp_path, capsys):
    shards = tmp_path / "shards"
    build = ["index", "build", "--gallery", str(gallery), "--checkpoint", str(checkpoint), "--out", str(shards)]
    assert main([*build, "--shard-by", "size", "--shard-size", "5", "--device", "cpu"]) == 0
    capsys.readouterr()
    names = sorted(p.name for p in shards.iterdir() if p.is_dir())
    first = (shards / names[0] / "maps.npy").stat().st_mtime_ns
    shutil.copy(next(gallery.glob("*.jpg")), gallery / "0999_c1s1_000001_01.jpg")  # new: goes to the last shard
    assert main(["index", "update", "--index", str(shards), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "1 added" in out and "1 shard(s) updated" in out
    assert (shards / names[0] / "maps.npy").stat().st_mtime_ns == first
