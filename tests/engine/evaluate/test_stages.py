"""Re-ranking glue: the block-wise QAConv distances equal a dense re-ranking; pair scores; the -score error."""

import numpy as np
import pytest
import torch

from qaconv.config import EvaluationConfig
from qaconv.engine.evaluate import rerank_maps
from qaconv.errors import QAConvError
from qaconv.matching import pair_scores
from qaconv.metrics import k_reciprocal_rerank
from tests.engine.evaluate.problems import dense_scores, make_matcher, make_problem


def test_pair_scores_equal_the_diagonal_of_the_matcher():
    matcher = make_matcher()
    q, g, *_ = make_problem(num_query=9, num_gallery=9)
    expected = np.diag(dense_scores(matcher, q, g))
    np.testing.assert_allclose(pair_scores(matcher, q, g).numpy(), expected, atol=1e-5)
    with pytest.raises(QAConvError, match="as many probe as gallery"):
        pair_scores(matcher, q, g[:3])


@pytest.mark.parametrize("kind", ["neg_score", "sigmoid"])
def test_rerank_equals_dense_rerank_of_the_full_qaconv_distances(kind):
    matcher = make_matcher()
    q, g, *_ = make_problem(num_query=12, num_gallery=30)
    both = torch.cat([q, g])
    scores = torch.from_numpy(dense_scores(matcher, both, both))
    full = -scores if kind == "neg_score" else 1 - torch.sigmoid(scores / 10)
    assert (full.max(dim=0).values > 0).all()  # the -score case needs positive column maxima
    expected = k_reciprocal_rerank(full.numpy(), 12, k1=5, k2=3)
    opts = EvaluationConfig(prob_block=5, gal_block=8, k1=5, k2=3, rerank_dist=kind)
    got = rerank_maps(matcher, q, g, options=opts, dtype=torch.float32, device=torch.device("cpu"))
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_rerank_with_positive_scores_only_names_the_option():
    matcher = make_matcher()
    with torch.no_grad():
        matcher.logit_bn.running_mean.fill_(-50.0)  # every score > 0, so -score is never positive
    q, g, *_ = make_problem(num_query=4, num_gallery=6)
    with pytest.raises(QAConvError, match="--rerank-dist sigmoid"):
        rerank_maps(
            matcher, q, g, options=EvaluationConfig(k1=3, k2=2), dtype=torch.float32, device=torch.device("cpu")
        )
