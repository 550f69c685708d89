"""EvalScorer: the eval-mode score chain that block scoring, pair scoring, export and correspondences share."""

import numpy as np
import pytest
import torch

from qaconv.matching import EvalScorer, QAConv, locations_by_row, pair_scores
from tests.matching.conftest import REF, assert_close_rel, random_maps, reference_matcher


def trained_matcher(seed: int = 0) -> QAConv:
    """A 16 x 6 x 4 matcher whose batch norms and fc have non-trivial values."""
    g = torch.Generator().manual_seed(seed)
    matcher = QAConv(16, 6, 4)
    with torch.no_grad():
        for bn in (matcher.bn, matcher.logit_bn):
            bn.running_mean.uniform_(-1, 1, generator=g)
            bn.running_var.uniform_(0.5, 2, generator=g)
            bn.weight.uniform_(0.5, 2, generator=g)
            bn.bias.uniform_(-1, 1, generator=g)
        matcher.fc.weight.uniform_(-0.1, 0.1, generator=g)
        matcher.fc.bias.uniform_(-1, 1, generator=g)
    return matcher.eval()


def test_scorer_gives_the_published_eval_scores():
    scorer = reference_matcher().train().eval_affine()  # running statistics whatever the matcher's mode
    assert isinstance(scorer, EvalScorer) and scorer.locations == REF["prob"].shape[2] * REF["prob"].shape[3]
    scores = scorer(torch.from_numpy(REF["prob"]), torch.from_numpy(REF["gal"]))
    assert_close_rel(scores.detach().numpy(), REF["score_eval"])


def test_tile_aligned_and_forward_equal_the_matchers_eval_forward():
    matcher = trained_matcher()
    scorer = matcher.eval_affine()
    prob, gal = random_maps(3, seed=1), random_maps(5, seed=2)
    with torch.no_grad():
        expected = matcher(prob, gal)
    torch.testing.assert_close(scorer(prob, gal), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scorer.tile(locations_by_row(prob), locations_by_row(gal)), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(scorer.aligned(prob, gal[:3]), expected.diagonal(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pair_scores(matcher, prob, gal[:3]), expected.diagonal(), atol=1e-5, rtol=1e-5)


def test_contributions_rebuild_the_score():
    matcher = trained_matcher(3)
    scorer = matcher.eval_affine()
    prob, gal = random_maps(2, seed=4), random_maps(3, seed=5)
    sim = scorer.similarities(locations_by_row(prob), locations_by_row(gal))
    best_in_gal, best_in_prob = sim.amax(dim=3), sim.amax(dim=1)  # [P, hw, G], [P, G, hw]
    total = scorer.contributions(best_in_gal.permute(0, 2, 1)).sum(-1) + scorer.contributions(best_in_prob).sum(-1)
    rebuilt = scorer.logit_scale * (total + 2 * scorer.fc_bias) + scorer.logit_offset
    torch.testing.assert_close(rebuilt, scorer.combine(best_in_gal, best_in_prob), atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_scorer_is_a_snapshot_that_moves_and_scripts():
    matcher = trained_matcher()
    scorer = matcher.eval_affine()
    before = scorer.weight.clone()
    with torch.no_grad():
        matcher.fc.weight.add_(1.0)  # later training does not change an existing scorer
    torch.testing.assert_close(scorer.weight, before)
    assert {name for name, _ in scorer.named_buffers()} >= {"weight", "scale", "offset"}
    scripted = torch.jit.script(scorer)
    prob, gal = random_maps(2, seed=6), random_maps(4, seed=7)
    np.testing.assert_allclose(scripted(prob, gal).numpy(), scorer(prob, gal).numpy(), rtol=1e-6, atol=1e-6)
