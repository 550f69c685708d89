"""Local correspondences: contributions that add up to the score, argmax locations, the picture. `qaconv match` is
tested in tests/commands/test_match.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qaconv.errors import QAConvError
from qaconv.inference import local_correspondences, plot_correspondences
from qaconv.inference.correspondence import strongest_lines
from qaconv.matching import QAConv
from tests.conftest import load_reference

REF = load_reference("qaconv_matcher.npz")


def reference_matcher() -> QAConv:
    matcher = QAConv(*REF["prob"].shape[1:])
    matcher.load_state_dict(
        {k.removeprefix("state."): torch.from_numpy(v) for k, v in REF.items() if k.startswith("state.")}
    )
    return matcher


def test_contributions_add_up_to_the_published_eval_score():
    matcher = reference_matcher().train()  # the eval-mode decomposition is used whatever the mode
    corr = local_correspondences(matcher, torch.from_numpy(REF["prob"]), torch.from_numpy(REF["gal"]))
    expected = REF["score_eval"]
    np.testing.assert_allclose(corr.score.numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).mean())
    total = corr.prob_contrib.sum(dim=(2, 3)) + corr.gal_contrib.sum(dim=(2, 3)) + 2 * corr.fc_bias
    rebuilt = corr.logit_scale * total + corr.logit_offset
    np.testing.assert_allclose(rebuilt.numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).mean())


def test_best_matches_are_the_argmax_locations_in_both_directions():
    prob, gal = REF["prob"], REF["gal"]
    p, c, h, w = prob.shape
    sim = np.einsum("pcs,gcr->pgsr", prob.reshape(p, c, -1), gal.reshape(len(gal), c, -1))
    corr = local_correspondences(reference_matcher(), torch.from_numpy(prob), torch.from_numpy(gal))
    assert corr.index_in_gal.shape == (p, len(gal), h, w)
    np.testing.assert_array_equal(corr.index_in_gal.reshape(p, len(gal), -1).numpy(), sim.argmax(axis=3))
    np.testing.assert_array_equal(corr.index_in_prob.reshape(p, len(gal), -1).numpy(), sim.argmax(axis=2))
    np.testing.assert_allclose(corr.prob_similarity.reshape(p, len(gal), -1).numpy(), sim.max(axis=3), atol=1e-6)


def hand_matcher() -> QAConv:
    """QAConv(4 channels, 2x1 locations) with round numbers: BN(x) = 4x - 1.9, fc = [0.3, 0.7] + 0.05,
    logit BN(y) = (y - 1) / 2."""
    matcher = QAConv(4, 2, 1)
    with torch.no_grad():
        matcher.bn.running_mean.fill_(0.5)
        matcher.bn.running_var.fill_(0.25)
        matcher.bn.weight.fill_(2.0)
        matcher.bn.bias.fill_(0.1)
        matcher.fc.weight.copy_(torch.tensor([[0.3, 0.7]]))
        matcher.fc.bias.fill_(0.05)
        matcher.logit_bn.running_mean.fill_(1.0)
        matcher.logit_bn.running_var.fill_(4.0)
    matcher.bn.eps = matcher.logit_bn.eps = 0.0
    return matcher


def hand_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Probe locations e0, e1; gallery locations e1, (e0 + e2)/sqrt(2)."""
    e = torch.eye(4)
    prob = torch.stack([e[0], e[1]], dim=1).view(1, 4, 2, 1)
    gal = torch.stack([e[1], (e[0] + e[2]) / math.sqrt(2)], dim=1).view(1, 4, 2, 1)
    return prob, gal


def test_hand_computed_pair():
    corr = local_correspondences(hand_matcher(), *hand_pair())
    r = math.sqrt(0.5)
    # probe 0 best matches gallery 1 (sim r), probe 1 gallery 0 (sim 1); gallery 0 -> probe 1, gallery 1 -> probe 0
    assert corr.index_in_gal.flatten().tolist() == [1, 0]
    assert corr.index_in_prob.flatten().tolist() == [1, 0]
    prob_contrib = [(4 * r - 1.9) * 0.3, (4 * 1 - 1.9) * 0.7]
    gal_contrib = [(4 * 1 - 1.9) * 0.3, (4 * r - 1.9) * 0.7]
    np.testing.assert_allclose(corr.prob_contrib.flatten().numpy(), prob_contrib, rtol=1e-6)
    np.testing.assert_allclose(corr.gal_contrib.flatten().numpy(), gal_contrib, rtol=1e-6)
    score = (sum(prob_contrib) + sum(gal_contrib) + 2 * 0.05 - 1.0) / 2.0
    assert corr.score.item() == pytest.approx(score, rel=1e-6)
    assert (corr.logit_scale, corr.logit_offset, corr.fc_bias) == pytest.approx((0.5, -0.5, 0.05))
    record = corr.to_dict()
    assert record["score"] == pytest.approx(score, rel=1e-6)
    assert record["probe_to_gallery"][0] == {
        "location": [0, 0],
        "best_match": [1, 0],
        "similarity": pytest.approx(r),
        "contribution": pytest.approx(prob_contrib[0]),
    }
    assert record["gallery_to_probe"][1]["best_match"] == [0, 0]


def test_strongest_lines_threshold_and_count():
    corr = local_correspondences(hand_matcher(), *hand_pair())
    strong = (4 - 1.9) * 0.7
    assert strongest_lines(corr) == [
        (1, 0, pytest.approx(strong)),
        (0, 1, pytest.approx((4 * math.sqrt(0.5) - 1.9) * 0.3)),
    ]
    assert [s for s, _, _ in strongest_lines(corr, threshold=1.0)] == [1]
    assert [s for s, _, _ in strongest_lines(corr, max_lines=1)] == [1]
    assert strongest_lines(corr, max_lines=0) == []
    with pytest.raises(QAConvError, match="--max-lines must be >= 0"):
        strongest_lines(corr, max_lines=-1)


def test_single_pair_methods_refuse_a_batch():
    maps = torch.nn.functional.normalize(torch.randn(2, 4, 2, 1), dim=1)
    corr = local_correspondences(hand_matcher(), maps, maps)
    with pytest.raises(QAConvError, match=r"one pair, got \[2, 2\] pairs"):
        corr.to_dict()
    assert corr.pair(1, 0).score.item() == pytest.approx(corr.score[1, 0].item())


def test_plot_draws_lines_in_the_colour_map():
    from PIL import Image

    corr = local_correspondences(hand_matcher(), *hand_pair())
    probe = Image.new("RGB", (32, 64), (128, 128, 128))
    gallery = Image.new("L", (40, 80), 128).convert("RGB")  # another size: resized to the probe's
    without = np.asarray(plot_correspondences(probe, gallery, corr, max_lines=0))
    picture = plot_correspondences(probe, gallery, corr, max_lines=2)
    assert picture.mode == "RGB" and picture.size == (600, 700)
    changed = np.abs(np.asarray(picture).astype(int) - without).sum(axis=2) > 60
    assert changed.sum() > 100  # the two lines and their end points
