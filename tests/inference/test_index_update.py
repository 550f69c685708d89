"""An index notices images changed on disk, and `update_index` / `qaconv index update` bring it up to date without
re-extracting the images that did not change."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from qaconv.cli import main
from qaconv.errors import QAConvError
from qaconv.inference import GalleryIndex


@pytest.fixture
def gallery(gallery_dir, tmp_path):
    """A copy of the test gallery that the tests may edit."""
    return shutil.copytree(gallery_dir, tmp_path / "gallery")


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
