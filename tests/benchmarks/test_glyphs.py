"""The glyph benchmark's builder on a tiny set: MSMT17 layout that qaconv reads, reproducible, a floor recorded.

Needs the typefaces of benchmarks/glyphs/packages.txt (CI installs fonts-unfonts-core, enough for this size);
skipped where they are missing.
"""

import json

import pytest
from benchmarks.glyphs.build import GlyphOptions, build, main, read_floor
from benchmarks.glyphs.faces import FONT_DIR, TEST_FACES, TRAIN_FACES, installed, ks_x_1001_syllables

from qaconv.data import create_dataset

TINY = GlyphOptions(train_ids=6, test_ids=3, faces_per_id=3, queries_per_id=1, size=32, seed=5)

pytestmark = pytest.mark.skipif(
    len(installed(TRAIN_FACES, FONT_DIR)) < 3 or len(installed(TEST_FACES, FONT_DIR)) < 2,
    reason="the Korean typefaces are not installed (sudo apt-get install $(cat benchmarks/glyphs/packages.txt))",
)


def test_the_syllables_are_the_2350_of_ks_x_1001_and_no_han_characters():
    syllables = ks_x_1001_syllables()
    assert len(syllables) == len(set(syllables)) == 2350
    assert all(0xAC00 <= ord(c) <= 0xD7A3 for c in syllables)  # Hangul syllables only


def test_a_tiny_benchmark_is_an_msmt17_set_of_unseen_syllables_in_unseen_faces(tmp_path):
    meta = build(tmp_path, TINY, workers=1)
    ds = create_dataset("msmt17", str(tmp_path / "msmt17"))
    assert ds.num_train_ids == 6 and len(ds.train) == 6 * 3
    train_chars = {meta["train_ids"][pid] for pid in meta["train_ids"]}
    test_chars = set(meta["test_ids"].values())
    assert len(test_chars) == 3 and not train_chars & test_chars
    faces = len(meta["test_cameras"])
    assert len(ds.query) == 3 and len(ds.gallery) == 3 * (faces - 1)  # every test face draws every test syllable
    assert not set(meta["train_cameras"].values()) & set(meta["test_cameras"].values())
    assert {r.camid for r in ds.train} <= set(range(len(meta["train_cameras"])))
    floor = read_floor(tmp_path / "msmt17")
    assert floor == meta["pixel_cosine_floor"] and 0 < floor["mAP"] <= 1 and 0 <= floor["rank1"] <= 1
    saved = json.loads((tmp_path / "msmt17" / "glyphs.json").read_text())
    assert saved["options"]["seed"] == 5 and saved["counts"] == {"train": 18, "query": 3, "gallery": len(ds.gallery)}


def test_the_same_options_draw_the_same_images(tmp_path):
    build(tmp_path / "a", TINY, workers=1)
    build(tmp_path / "b", TINY, workers=2)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert files and files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.png"))
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)


def test_the_command_refuses_to_replace_a_built_set_without_overwrite(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--train-ids", "6", "--test-ids", "3", "--faces-per-id", "3"]
    args += ["--queries-per-id", "1", "--size", "32", "--workers", "1"]
    main(args)
    assert "pixel-cosine floor Rank-1" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        main(args)
    main([*args, "--overwrite"])
