"""The location first stage: its settings, its estimate, and its recall against exhaustive QAConv."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qaconv.errors import QAConvError
from qaconv.inference import first_stage
from qaconv.inference.first_stage import (
    FirstStageSettings,
    LocationIndex,
    largest,
    location_rows,
    nearest_centroid,
    signed_weight,
)
from qaconv.inference.search import search
from qaconv.matching import QAConv, score_blocks

pytest.importorskip("faiss")

C, H, W = 16, 4, 2


def part_maps(ids: int, per_id: int, seed: int, draw: int = 0, parts: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps with identity structure as people have it: each identity wears a top (the upper half of the map) and a
    bottom drawn from `parts` of each, shared between identities; each entry is its identity's prototype plus
    noise (a new draw per `draw`), normalised per location as the network's maps are. Returns (maps, identities)."""
    generator = torch.Generator().manual_seed(seed)
    tops, bottoms = (torch.randn(parts, C, H // 2, W, generator=generator) for _ in range(2))
    top, bottom = (torch.randint(0, parts, (ids,), generator=generator) for _ in range(2))
    prototypes = torch.cat([tops[top], bottoms[bottom]], dim=2)
    labels = torch.arange(ids).repeat_interleave(per_id)
    noise = torch.randn(len(labels), C, H, W, generator=torch.Generator().manual_seed(1000 * seed + draw + 1))
    return F.normalize(prototypes[labels] + 0.8 * noise, dim=1), labels


def recall(truth: torch.Tensor, found: torch.Tensor) -> float:
    return float(np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(truth.tolist(), found.tolist(), strict=True)]))


@pytest.fixture(scope="module")
def matcher() -> QAConv:
    torch.manual_seed(0)
    m = QAConv(C, H, W).eval()
    with torch.no_grad():  # a learned matcher weighs locations unequally
        m.fc.weight.uniform_(0.2, 1.0)
    return m


def test_settings_grow_with_the_gallery() -> None:
    small = FirstStageSettings.for_gallery(10_000, 64, 32)
    large = FirstStageSettings.for_gallery(1_000_000, 64, 32)
    paper = FirstStageSettings.for_gallery(100_000, 128, 192)
    assert small.lists < large.lists <= 4096
    assert small.shortlist < large.shortlist
    assert paper.candidates < FirstStageSettings.for_gallery(100_000, 64, 32).candidates  # its exact score costs more
    assert all(s.candidates <= s.shortlist for s in (small, large, paper))
    tiny = FirstStageSettings.for_gallery(50, 16, 8)
    assert tiny.shortlist <= 50 and tiny.candidates <= 50 and tiny.probes < tiny.lists


def test_location_rows_are_entry_major() -> None:
    maps = torch.arange(2 * 3 * 2 * 1, dtype=torch.float32).reshape(2, 3, 2, 1)
    rows = location_rows(maps)
    assert rows.shape == (4, 3)
    assert rows[1].tolist() == maps[0, :, 1, 0].tolist() and rows[2].tolist() == maps[1, :, 0, 0].tolist()


def hand_made_index() -> LocationIndex:
    """Four centroids; entries of two locations: 0 uses centroids (0, 1), 1 uses (2, 2), 2 uses (3, 0)."""
    codes = np.array([[0, 1], [2, 2], [3, 0]], dtype=np.int16)
    return LocationIndex(np.eye(4, 4, dtype=np.float32), codes, FirstStageSettings(lists=4, probes=1, shortlist=3,
                                                                                   candidates=3))  # fmt: skip


def test_inverted_lists_hold_each_entry_once_per_centroid_in_order() -> None:
    owners, offsets = hand_made_index().inverted_lists()
    lists = [owners[offsets[c] : offsets[c + 1]].tolist() for c in range(4)]
    assert lists == [[0, 2], [0], [1], [2]]


def test_votes_go_to_the_entries_of_each_query_locations_nearest_centroids() -> None:
    stage = hand_made_index()
    # query location 0 is nearest centroid 2 (floor: the next, 0.5), location 1 nearest centroid 3 (floor 0.6)
    similarity = torch.tensor([[0.1, 0.5, 0.9, 0.2], [0.6, 0.3, 0.0, 0.7]])
    weight = torch.tensor([1.0, 2.0])
    # votes: entry 1 gets 1 * (0.9 - 0.5) = 0.4, entry 2 gets 2 * (0.7 - 0.6) = 0.2, entry 0 none
    assert stage.shortlist(similarity, weight, 2).tolist() in ([1, 2], [2, 1])
    assert set(stage.shortlist(similarity, torch.tensor([1.0, 5.0]), 1).tolist()) == {2}


def test_the_interaction_is_qaconvs_score_with_centroids_for_the_gallerys_locations() -> None:
    stage = hand_made_index()
    similarity = torch.tensor([[0.1, 0.5, 0.9, 0.2], [0.6, 0.3, 0.0, 0.7]])
    weight = torch.tensor([1.0, 2.0])
    # query to gallery: sum over query locations s of weight[s] * max over the entry's centroids;
    # entry 0 (centroids 0, 1): 1 * 0.5 + 2 * 0.6 = 1.7; entry 1 (2, 2): 0.9 + 2 * 0.0 = 0.9; entry 2 (3, 0): 0.2 + 1.4
    # gallery to query: sum over the entry's locations t of weight[t] * the best query location for its centroid
    # (per centroid 0.6, 0.5, 0.9, 0.7); entry 0: 0.6 + 2 * 0.5 = 1.6; entry 1: 0.9 + 1.8 = 2.7; entry 2: 0.7 + 1.2
    got = stage.interaction(similarity, weight, np.array([0, 1, 2]))
    step = (0.9 - 0.0) / 255  # the quantisation step of the similarities
    assert torch.allclose(got, torch.tensor([1.7 + 1.6, 0.9 + 2.7, 1.6 + 1.9]), atol=3 * step)
    assert stage.interaction(similarity, weight, np.array([2, 0])).tolist() == got[[2, 0]].tolist()


def test_candidates_hold_what_exhaustive_qaconv_ranks_first(matcher) -> None:
    gallery, _ = part_maps(ids=300, per_id=8, seed=0)
    query, _ = part_maps(ids=300, per_id=1, seed=0, draw=1)  # same identities, new noise
    query = query[:20]
    stage = LocationIndex.build(gallery.half().numpy(), FirstStageSettings.for_gallery(len(gallery), C, H * W))
    assert stage.entries == len(gallery)
    exact, _ = search(matcher, query, gallery, 10)
    fast, fast_scores = search(matcher, query, gallery, 10, first_stage=stage)
    # the first 5 are mostly the query's identity; beyond its 8 entries come identities sharing a part with it
    assert recall(exact[:, :5], fast[:, :5]) >= 0.95 and recall(exact, fast) >= 0.9
    deeper, _ = search(matcher, query, gallery, 10, first_stage=stage, shortlist_size=len(gallery) // 4)
    assert recall(exact, deeper) >= 0.95
    # the hits are re-scored exactly: their scores are QAConv's
    exact_scores = torch.cat([block for *_, block in score_blocks(matcher, query[:1], gallery[fast[0]])], 1)
    assert torch.allclose(fast_scores[0], exact_scores[0], atol=1e-5)


def test_saved_loaded_and_emptied(matcher, tmp_path) -> None:
    gallery, _ = part_maps(ids=100, per_id=6, seed=1)
    query = gallery[:5]
    settings = FirstStageSettings.for_gallery(len(gallery), C, H * W)
    stage = LocationIndex.build(gallery.numpy(), settings)
    weight = signed_weight(matcher)
    before = stage.candidates(query, weight)
    stage.save(tmp_path / "locations.npz")
    loaded = LocationIndex.load(tmp_path / "locations.npz", settings, H * W)
    assert [c.tolist() for c in loaded.candidates(query, weight)] == [c.tolist() for c in before]
    refilled = stage.emptied()
    assert refilled.entries == 0 and stage.entries == len(gallery)
    refilled.add_all(gallery.numpy())
    assert [c.tolist() for c in refilled.candidates(query, weight)] == [c.tolist() for c in before]
    with pytest.raises(QAConvError, match="does not match"):
        LocationIndex.load(tmp_path / "locations.npz", settings, H * W + 1)
    (tmp_path / "locations.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(QAConvError, match="damaged"):
        LocationIndex.load(tmp_path / "locations.npz", settings, H * W)


def test_a_negative_scale_reverses_the_weight(matcher) -> None:
    flipped = QAConv(C, H, W).eval()
    flipped.load_state_dict(matcher.state_dict())
    with torch.no_grad():
        flipped.logit_bn.weight.mul_(-1)
    assert torch.equal(signed_weight(flipped), -signed_weight(matcher))


@pytest.mark.parametrize(("n", "size"), [(10, 3), (10, 10), (5000, 100), (5000, 4000), (100_000, 2000)])
def test_largest_finds_the_largest_values(n: int, size: int) -> None:
    rng = np.random.default_rng(n + size)
    values = rng.random(n).astype(np.float32)
    values[rng.random(n) < 0.5] = 0  # many ties at zero, as entries without votes
    got = largest(values, size)
    assert len(got) == size == len(set(got.tolist()))
    assert values[got].min() >= np.sort(values)[-size]
    skewed = np.zeros(n, dtype=np.float32)
    skewed[: size // 2] = 1  # the sample's threshold passes too few: the whole array is partitioned
    assert sorted(largest(skewed, size).tolist())[: size // 2] == list(range(size // 2))


def test_the_index_takes_a_few_bytes_per_location(matcher) -> None:
    gallery, _ = part_maps(ids=100, per_id=6, seed=2)
    stage = LocationIndex.build(gallery.numpy(), FirstStageSettings.for_gallery(len(gallery), C, H * W))
    per_location = (stage.memory_bytes() - stage.centroids.nbytes) / (len(gallery) * H * W)
    assert per_location <= 2 + 4 + 1  # a centroid id, an inverted-list entry, the offsets


def test_the_nearest_centroid_is_the_same_with_and_without_faiss(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    centroids = rng.standard_normal((50, 8)).astype(np.float32)
    rows = rng.standard_normal((1000, 8)).astype(np.float32)
    brute = (rows @ centroids.T).argmax(axis=1)
    assert (nearest_centroid(centroids)(rows) == brute).all()
    monkeypatch.setattr(first_stage, "faiss_available", lambda: False)
    assert (nearest_centroid(centroids)(rows) == brute).all()
