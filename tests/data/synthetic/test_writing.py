"""Writing a set: the Market loader reads it back, the bytes do not depend on the workers, speed, and the
output folder's checks (an earlier set needs overwrite; a file in the way or an unwritable folder is a
one-line error before anything is drawn, and nothing there is lost)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from qaconv.data.datasets import create_dataset
from qaconv.data.synthetic import SynthConfig, check_dataset_out, generate
from qaconv.errors import QAConvError
from qaconv.folders import MARKER
from tests.data.synthetic.conftest import SMALL, read_bytes


def test_round_trip_through_the_market_loader(small_set):
    root, meta, _ = small_set
    counts = meta["counts"]
    ds = create_dataset("market1501", str(root))
    assert len(ds.train) == counts["bounding_box_train"]["images"]
    assert len(ds.query) == counts["query"]["images"]
    assert len(ds.gallery) == counts["bounding_box_test"]["images"] - counts["bounding_box_test"]["junk"]
    assert sorted({r.pid for r in ds.train}) == list(range(SMALL["num_ids"] // 2))  # relabelled
    assert {r.pid for r in ds.query} == {r.pid for r in ds.gallery} - {0}
    assert sum(r.pid == 0 for r in ds.gallery) == counts["bounding_box_test"]["distractors"]
    cams = {r.camid for split in (ds.train, ds.query, ds.gallery) for r in split}
    assert cams == set(range(SMALL["num_cams"]))
    assert all(r.time >= 0 for r in ds.gallery) and ds.has_time


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    small = {**SMALL, "num_ids": 40}  # >= 200 images, so workers=2 really uses a process pool
    generate(tmp_path / "a", SynthConfig(seed=11, style="B", **small), workers=1)
    generate(tmp_path / "b", SynthConfig(seed=11, style="B", **small), workers=2)
    generate(tmp_path / "c", SynthConfig(seed=12, style="B", **small), workers=1)
    a, b, c = (read_bytes(tmp_path / d) for d in "abc")
    assert sum(k.endswith(".jpg") for k in a) >= 200
    assert a == b
    assert a.keys() != c.keys() or a != c
    common = set(a) & set(c) - {"meta.json", MARKER}  # the folder marker says "a data set" in both
    assert all(a[k] != c[k] for k in common)


def test_a_config_writes_what_the_same_options_write(tmp_path):
    options = {**SMALL, "seed": 3, "style": "b", "junk_fraction": 0.3}
    meta = generate(tmp_path / "options", SynthConfig(**options), workers=1)
    assert generate(tmp_path / "config", SynthConfig(**options), workers=0) == meta
    assert read_bytes(tmp_path / "options") == read_bytes(tmp_path / "config")
    with pytest.raises(QAConvError, match="config must be a SynthConfig"):
        generate(tmp_path / "dict", options)
    assert not (tmp_path / "dict").exists()


def test_small_generation_is_fast(small_set):
    _, meta, seconds = small_set
    images = sum(c["images"] for c in meta["counts"].values())
    assert images > 50
    assert seconds < 15, f"{images} images took {seconds:.1f} s"


@pytest.mark.slow
def test_thousand_identities_under_a_minute(tmp_path):
    start = time.perf_counter()
    meta = generate(tmp_path / "big", SynthConfig(num_ids=1000, num_cams=6, seed=0, style="A", images_per_id=10))
    seconds = time.perf_counter() - start
    assert sum(c["images"] for c in meta["counts"].values()) > 9000
    assert seconds < 60, f"took {seconds:.1f} s"


def test_existing_data_set_needs_overwrite(tmp_path):
    root = tmp_path / "set"
    generate(root, SynthConfig(seed=1, **SMALL), workers=1)
    (root / "notes.txt").write_text("mine")
    before = read_bytes(root)
    with pytest.raises(QAConvError, match="overwrite") as caught:
        generate(root, SynthConfig(seed=2, **SMALL), workers=1)
    assert "overwrite=True" in str(caught.value) and "--overwrite" not in str(caught.value)  # API wording
    assert read_bytes(root) == before
    with pytest.raises(QAConvError, match=r"holds files that are not part of a data set \(notes.txt\)"):
        generate(root, SynthConfig(seed=2, **SMALL), workers=1, overwrite=True)  # replacing the folder would lose them
    assert read_bytes(root) == before
    (root / "notes.txt").unlink()
    meta = generate(root, SynthConfig(seed=2, **SMALL), workers=1, overwrite=True)
    assert meta["seed"] == 2
    assert sum(1 for _ in root.rglob("*.jpg")) == sum(c["images"] for c in meta["counts"].values())


def test_an_interrupted_build_leaves_no_data_set_under_the_final_name(tmp_path, monkeypatch):
    from qaconv.data.synthetic import writing

    def interrupted(batches, workers):
        raise KeyboardInterrupt

    monkeypatch.setattr(writing, "_write_images", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "set", SynthConfig(seed=1, **SMALL), workers=1)
    assert not (tmp_path / "set").exists() and not list(tmp_path.iterdir())  # nor a hidden partial one left


@pytest.mark.parametrize("kind", ["run", "index"])
def test_a_data_set_is_not_written_into_a_folder_of_another_kind(tmp_path, kind):
    folder = tmp_path / kind
    folder.mkdir()
    (folder / ("checkpoint.pt" if kind == "run" else "manifest.json")).write_text("{}")
    with pytest.raises(QAConvError, match=f"out_dir {folder} is a qaconv {kind} folder, not a data set"):
        generate(folder, SynthConfig(seed=1, **SMALL), workers=1, overwrite=True)


def _unwritable(tmp_path: Path) -> list[tuple[Path, str]]:
    """Output folders that cannot hold a data set, each with a part of its message."""
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    cases = [(a_file, "exists and is not a folder"), (a_file / "sub", "cannot create the folder")]
    if sys.platform.startswith("linux"):
        cases.append((Path("/proc/qaconv-synth"), "cannot be written"))
    return cases


def test_an_output_folder_that_cannot_be_written_is_refused(tmp_path):
    for out, message in _unwritable(tmp_path):
        with pytest.raises(QAConvError, match=message) as caught:
            generate(out, SynthConfig(seed=1, **SMALL), workers=1)
        assert str(caught.value).startswith(f"out_dir {out}")
        with pytest.raises(QAConvError, match=message) as caught:
            check_dataset_out(out, False, "--out")
        assert str(caught.value).startswith(f"--out {out}")
    assert (tmp_path / "file.txt").read_text() == "mine"


def test_negative_workers_are_refused(tmp_path):
    with pytest.raises(QAConvError, match="workers must be >= 0"):
        generate(tmp_path / "x", SynthConfig(**SMALL), workers=-3)
    assert not (tmp_path / "x").exists()
