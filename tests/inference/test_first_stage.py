"""The location first stage: its settings, its estimate, and its recall against exhaustive QAConv."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qaconv.inference.first_stage import FirstStageSettings, LocationIndex, location_rows, signed_weight
from qaconv.inference.search import search
from qaconv.matching import QAConv, score_blocks

pytest.importorskip("faiss")

C, H, W = 16, 4, 2


def clustered_maps(ids: int, per_id: int, seed: int, noise: float = 0.8) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps with identity structure: per identity a random prototype, each entry the prototype plus noise,
    normalised per location (as the network's maps are); returns (maps, identities)."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(ids, C, H, W, generator=generator)
    labels = torch.arange(ids).repeat_interleave(per_id)
    maps = prototypes[labels] + noise * torch.randn(len(labels), C, H, W, generator=generator)
    return F.normalize(maps, dim=1), labels


def recall(truth: torch.Tensor, found: torch.Tensor) -> float:
    return float(np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(truth.tolist(), found.tolist(), strict=True)]))


@pytest.fixture(scope="module")
def matcher() -> QAConv:
    torch.manual_seed(0)
    m = QAConv(C, H, W).eval()
    with torch.no_grad():  # a learned matcher weighs locations unequally
        m.fc.weight.uniform_(0.2, 1.0)
    return m


def test_settings_grow_with_the_gallery_and_stay_within_a_quarter_of_the_maps() -> None:
    small = FirstStageSettings.for_gallery(10_000, 64, 32)
    large = FirstStageSettings.for_gallery(1_000_000, 64, 32)
    paper = FirstStageSettings.for_gallery(100_000, 128, 192)
    assert small.lists < large.lists <= 4096
    assert small.probes <= large.probes and small.per_location < large.per_location
    assert small.candidates < large.candidates
    for settings, channels in ((small, 64), (large, 64), (paper, 128)):
        code_and_id = settings.sub_quantizers // 2 + 8  # bytes per location vector
        assert code_and_id <= 2 * channels / 4  # float16 maps: 2 bytes per channel
        assert channels % settings.sub_quantizers == 0


def test_location_rows_are_entry_major() -> None:
    maps = torch.arange(2 * 3 * 2 * 1, dtype=torch.float32).reshape(2, 3, 2, 1)
    rows = location_rows(maps)
    assert rows.shape == (4, 3)
    assert rows[1].tolist() == maps[0, :, 1, 0].tolist() and rows[2].tolist() == maps[1, :, 0, 0].tolist()


def test_the_estimate_is_the_weighted_best_similarity_with_the_last_fetched_for_the_missing() -> None:
    """Two query locations, three fetched gallery locations each; entry 7 is found by both, entry 3 only by the
    first (twice: its best counts), entry 5 only by the second."""
    stage = LocationIndex(index=None, settings=FirstStageSettings(1, 1, 1, 3, 3), locations=2)
    sims = np.array([0.9, 0.8, 0.5, 0.7, 0.6, 0.4], dtype=np.float32)  # location 0's three, then location 1's
    entries = np.array([3, 7, 3, 5, 7, -1])  # location 1 found only two
    weight = np.array([1.0, 2.0], dtype=np.float32)
    # floors: 0.5 (location 0's last), 0.6 (location 1's last valid); gains over the floors:
    # entry 3: 1 * (0.9 - 0.5) = 0.4; entry 7: 1 * (0.8 - 0.5) + 2 * (0.6 - 0.6) = 0.3; entry 5: 2 * (0.7 - 0.6) = 0.2
    assert stage._best_entries(sims, entries, weight, k=3, n=3).tolist() == [3, 7, 5]
    assert stage._best_entries(sims, entries, weight, k=3, n=1).tolist() == [3]
    assert stage._best_entries(sims, entries, np.array([1.0, 5.0], dtype=np.float32), k=3, n=3).tolist() == [5, 3, 7]


def test_candidates_hold_what_exhaustive_qaconv_ranks_first(matcher) -> None:
    gallery, _ = clustered_maps(ids=300, per_id=8, seed=0)
    query, _ = clustered_maps(ids=300, per_id=1, seed=0)  # same prototypes, new noise
    query = query[:20]
    stage = LocationIndex.build(gallery.half().numpy(), FirstStageSettings.for_gallery(len(gallery), C, H * W))
    assert stage.entries == len(gallery)
    exact, _ = search(matcher, query, gallery, 10)
    fast, fast_scores = search(matcher, query, gallery, 10, first_stage=stage)
    # the first 5 are the query's identity; beyond its 8 entries random clusters leave near-ties that a deeper
    # first stage finds too
    assert recall(exact[:, :5], fast[:, :5]) >= 0.95
    deeper, _ = search(matcher, query, gallery, 10, first_stage=stage, shortlist_size=len(gallery) // 4)
    assert recall(exact, deeper) >= 0.95
    # the hits are re-scored exactly: their scores are QAConv's
    exact_scores = torch.cat([block for *_, block in score_blocks(matcher, query[:1], gallery[fast[0]])], 1)
    assert torch.allclose(fast_scores[0], exact_scores[0], atol=1e-5)


def test_saved_emptied_and_removed(matcher, tmp_path) -> None:
    gallery, _ = clustered_maps(ids=100, per_id=6, seed=1)
    query = gallery[:5]
    settings = FirstStageSettings.for_gallery(len(gallery), C, H * W)
    stage = LocationIndex.build(gallery.numpy(), settings)
    weight = signed_weight(matcher)
    before = stage.candidates(query, weight)
    stage.save(tmp_path / "locations.faiss")
    loaded = LocationIndex.load(tmp_path / "locations.faiss", settings, H * W)
    assert [c.tolist() for c in loaded.candidates(query, weight)] == [c.tolist() for c in before]
    refilled = stage.emptied()
    assert refilled.entries == 0 and stage.entries == len(gallery)
    refilled.add_all(gallery.numpy())
    assert [c.tolist() for c in refilled.candidates(query, weight)] == [c.tolist() for c in before]
    stage.remove([0, 1, 2])
    assert stage.entries == len(gallery) - 3
    assert not set().union(*(set(c.tolist()) for c in stage.candidates(query, weight))) & {0, 1, 2}


def test_a_negative_scale_reverses_the_weight(matcher) -> None:
    flipped = QAConv(C, H, W).eval()
    flipped.load_state_dict(matcher.state_dict())
    with torch.no_grad():
        flipped.logit_bn.weight.mul_(-1)
    assert torch.equal(signed_weight(flipped), -signed_weight(matcher))
