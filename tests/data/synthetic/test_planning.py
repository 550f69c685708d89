"""The plan: Market-1501 names, the train/test split by families, queries, cameras and frames."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
from PIL import Image

from qaconv.data.synthetic import SynthConfig
from qaconv.data.synthetic.planning import MAX_FRAME, make_plan, market_name, split_families
from tests.data.synthetic.conftest import SMALL, parse


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


def test_market_name():
    assert market_name(7, 0, 151, 1) == "0007_c1s1_000151_01.jpg"
    assert market_name(-1, 8, 999_999, 12) == "-1_c9s1_999999_12.jpg"


def test_split_keeps_families_together_when_the_quota_allows():
    families = [[1, 2, 3], [4], [5, 6], [7, 8, 9, 10], [11], [12]]
    for seed in range(10):
        train = split_families(np.random.default_rng(seed), families, 6)
        assert len(train) == 6
        split = [f for f in families if 0 < len(train & set(f)) < len(f)]
        assert len(split) <= 1  # at most one family is split, to top up the quota


def test_plan_depends_only_on_the_config():
    config = SynthConfig(num_ids=20, num_cams=3, images_per_id=5, seed=3, style="B")
    a, b = make_plan(config), make_plan(config)
    assert [(s.name, s.split, s.key) for s in a.shots] == [(s.name, s.split, s.key) for s in b.shots]
    assert len({s.name for s in a.shots}) == len(a.shots)  # unique file names
    assert all(0 <= s.frame <= MAX_FRAME and 0 <= s.cam < 3 for s in a.shots)
    assert sorted(p for f in a.families for p in f) == list(range(1, 21)) == sorted(a.identities)
    other = make_plan(SynthConfig(num_ids=20, num_cams=3, images_per_id=5, seed=4, style="B"))
    assert [s.name for s in other.shots] != [s.name for s in a.shots]
