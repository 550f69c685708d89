"""Synthetic generator: Market-1501 layout, determinism, the two styles, learnability, speed, CLI."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qaconv.cli import main
from qaconv.data.datasets import create_dataset
from qaconv.data.synthetic import SPLIT_DIRS, generate
from qaconv.errors import QAConvError

NAME = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
SMALL = {"num_ids": 12, "num_cams": 4, "images_per_id": 6, "height": 64, "width": 32}


def parse(root: Path) -> dict[str, list[tuple[int, int, int, int, str]]]:
    """(pid, camera 1-based, session, frame, name) of every file in each split folder."""
    out = {}
    for split in SPLIT_DIRS:
        rows = []
        for path in sorted((root / split).iterdir()):
            m = NAME.match(path.name)
            assert m, f"not a Market-1501 file name: {split}/{path.name}"
            rows.append((int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), path.name))
        out[split] = rows
    return out


def read_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "market"
    start = time.perf_counter()
    meta = generate(root, seed=5, style="A", workers=1, **SMALL)
    return root, meta, time.perf_counter() - start


def test_market_layout_counts_and_splits(small_set):
    root, meta, _ = small_set
    files = parse(root)
    train, query, gallery = files["bounding_box_train"], files["query"], files["bounding_box_test"]
    counts = meta["counts"]
    assert json.loads((root / "meta.json").read_text()) == meta
    assert meta["generator"] == "qaconv.data.synthetic" and meta["seed"] == 5 and meta["style"] == "A"
    for split, rows in files.items():
        assert counts[split]["images"] == len(rows)
        assert all(sess == 1 and 1 <= cam <= SMALL["num_cams"] for _, cam, sess, _, _ in rows)

    train_ids = {r[0] for r in train}
    query_ids = {r[0] for r in query}
    gallery_ids = {r[0] for r in gallery if r[0] > 0}
    assert min(train_ids) > 0 and min(query_ids) > 0
    assert len(train_ids) == SMALL["num_ids"] // 2 == counts["bounding_box_train"]["ids"]
    assert train_ids == set(meta["train_ids"])
    assert query_ids == gallery_ids and len(query_ids) == SMALL["num_ids"] - SMALL["num_ids"] // 2
    assert not train_ids & query_ids
    assert train_ids | query_ids == set(range(1, SMALL["num_ids"] + 1))

    junk = [r for r in gallery if r[0] == -1]
    distractors = [r for r in gallery if r[0] == 0]
    assert len(junk) == counts["bounding_box_test"]["junk"] >= 1
    assert len(distractors) == counts["bounding_box_test"]["distractors"] >= 1
    assert [n for *_, n in junk + distractors if not (n.startswith("-1_c") or n.startswith("0000_c"))] == []

    # One query per (id, camera it appears in), and a gallery match in another camera for each query.
    per_id_cams = defaultdict(set)
    for pid, cam, *_ in query + [r for r in gallery if r[0] > 0]:
        per_id_cams[pid].add(cam)
    query_pairs = [(pid, cam) for pid, cam, *_ in query]
    assert len(query_pairs) == len(set(query_pairs))
    assert set(query_pairs) == {(pid, cam) for pid, cams in per_id_cams.items() for cam in cams}
    for pid, cam in query_pairs:
        assert any(g[0] == pid and g[1] != cam for g in gallery), (pid, cam)
    # Every identity is seen by at least two cameras, at least twice in each.
    per_id = defaultdict(lambda: defaultdict(int))
    for pid, cam, *_ in train + query + gallery:
        if pid > 0:
            per_id[pid][cam] += 1
    assert all(len(c) >= 2 and min(c.values()) >= 2 for c in per_id.values())

    with Image.open(root / "query" / query[0][4]) as img:
        assert img.format == "JPEG" and img.mode == "RGB" and img.size == (SMALL["width"], SMALL["height"])


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
    generate(tmp_path / "a", seed=11, style="B", workers=1, **small)
    generate(tmp_path / "b", seed=11, style="B", workers=2, **small)
    generate(tmp_path / "c", seed=12, style="B", workers=1, **small)
    a, b, c = (read_bytes(tmp_path / d) for d in "abc")
    assert sum(k.endswith(".jpg") for k in a) >= 200
    assert a == b
    assert a.keys() != c.keys() or a != c
    common = set(a) & set(c) - {"meta.json"}
    assert all(a[k] != c[k] for k in common)


def _channel_stats(root: Path) -> tuple[float, float]:
    """Mean warmth (R - B) and HSV saturation over all training images."""
    warm, sat = [], []
    for path in sorted((root / "bounding_box_train").iterdir()):
        with Image.open(path) as img:
            rgb = np.asarray(img, np.float32)
            hsv = np.asarray(img.convert("HSV"), np.float32)
        warm.append((rgb[..., 0] - rgb[..., 2]).mean())
        sat.append(hsv[..., 1].mean())
    return float(np.mean(warm)), float(np.mean(sat))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_styles_are_different_domains(tmp_path, seed):
    stats = {}
    for style in ("A", "B"):
        generate(tmp_path / style, seed=seed, style=style, workers=1, **SMALL)
        stats[style] = _channel_stats(tmp_path / style)
    (warm_a, sat_a), (warm_b, sat_b) = stats["A"], stats["B"]
    assert warm_b > warm_a + 15  # B: warm interior light
    assert sat_b > sat_a + 10  # B: stronger colour casts and palette


def _histogram_rank1(root: Path) -> tuple[float, float]:
    """Rank-1 of a colour-histogram matcher (Market protocol, cross-camera) and its chance level."""

    def load(split):
        feats, pids, cams = [], [], []
        for path in sorted((root / split).iterdir()):
            pid, cam = NAME.match(path.name).group(1, 2)
            if pid == "-1":
                continue
            with Image.open(path) as img:
                a = np.asarray(img, np.float32)
            a = np.clip(a / a.reshape(-1, 3).mean(0) * 110, 0, 255)  # grey-world: undo the camera cast
            h, w = a.shape[:2]
            parts = []
            for y0, y1 in ((0.15, 0.5), (0.5, 0.95)):
                q = (a[int(h * y0) : int(h * y1), w // 4 : 3 * w // 4].reshape(-1, 3) // 43).astype(int)
                hist = np.bincount(q[:, 0] * 36 + q[:, 1] * 6 + q[:, 2], minlength=216)
                parts.append(np.sqrt(hist / hist.sum()))
            feats.append(np.concatenate(parts))
            pids.append(int(pid))
            cams.append(int(cam))
        return np.asarray(feats), np.asarray(pids), np.asarray(cams)

    qx, qp, qc = load("query")
    gx, gp, gc = load("bounding_box_test")
    dist = ((qx[:, None] - gx[None]) ** 2).sum(-1)
    hits = []
    for i in range(len(qx)):
        keep = ~((gp == qp[i]) & (gc == qc[i]))
        hits.append(gp[keep][np.argmin(dist[i][keep])] == qp[i])
    return float(np.mean(hits)), 1.0 / len(set(gp.tolist()))


@pytest.mark.parametrize("style", ["A", "B"])
def test_identities_are_consistent_across_cameras(tmp_path, style):
    """Learnable: even colour histograms re-identify people across cameras far above chance (and the
    task is far from solved by them)."""
    generate(tmp_path / "set", num_ids=80, num_cams=6, seed=3, style=style, height=128, width=64)
    rank1, chance = _histogram_rank1(tmp_path / "set")
    assert 4 * chance < rank1 < 0.9


def test_small_generation_is_fast(small_set):
    _, meta, seconds = small_set
    images = sum(c["images"] for c in meta["counts"].values())
    assert images > 50
    assert seconds < 15, f"{images} images took {seconds:.1f} s"


@pytest.mark.slow
def test_thousand_identities_under_a_minute(tmp_path):
    start = time.perf_counter()
    meta = generate(tmp_path / "big", num_ids=1000, num_cams=6, seed=0, style="A", images_per_id=10)
    seconds = time.perf_counter() - start
    assert sum(c["images"] for c in meta["counts"].values()) > 9000
    assert seconds < 60, f"took {seconds:.1f} s"


def test_options_are_checked(tmp_path):
    for bad in (
        {"style": "C"},
        {"num_cams": 10},
        {"num_cams": 1},
        {"num_ids": 1},
        {"images_per_id": 3},
        {"height": 16},
        {"quality": 0},
        {"junk_fraction": 2.0},
    ):
        with pytest.raises(QAConvError):
            generate(tmp_path / "x", **{**SMALL, **bad})
    assert not (tmp_path / "x").exists()


def test_existing_data_set_needs_overwrite(tmp_path):
    root = tmp_path / "set"
    generate(root, seed=1, workers=1, **SMALL)
    (root / "notes.txt").write_text("mine")
    with pytest.raises(QAConvError, match="overwrite"):
        generate(root, seed=2, workers=1, **SMALL)
    meta = generate(root, seed=2, workers=1, overwrite=True, **SMALL)
    assert meta["seed"] == 2 and (root / "notes.txt").read_text() == "mine"
    assert sum(1 for _ in root.rglob("*.jpg")) == sum(c["images"] for c in meta["counts"].values())


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    args = [
        "synth",
        "--out",
        str(out),
        "--ids",
        "8",
        "--cams",
        "3",
        "--seed",
        "4",
        "--style",
        "B",
        "--images-per-id",
        "5",
        "--height",
        "64",
        "--width",
        "32",
        "--workers",
        "1",
    ]
    assert main(args) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["num_ids"], meta["num_cams"], meta["style"], meta["height"]) == (8, 3, "B", 64)
    assert "bounding_box_train" in capsys.readouterr().out
    assert main(args) == 2  # exists: needs --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert main(["synth", "--out", str(tmp_path / "bad"), "--cams", "12"]) == 2
