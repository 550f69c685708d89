"""The QAConv matcher: the published state dict and scores, symmetry and its checks of feature maps."""

import numpy as np
import pytest
import torch

from qaconv.errors import QAConvError
from qaconv.matching import QAConv, pairwise_scores
from tests.matching.conftest import REF, assert_close_rel, random_maps, reference_matcher


def test_state_dict_keys_match_published_matcher():
    keys = {k.removeprefix("state.") for k in REF if k.startswith("state.")}
    assert set(QAConv(16, 6, 4).state_dict()) == keys


def test_fc_weight_initialised_to_one_over_locations():
    matcher = QAConv(8, 3, 2)
    assert torch.allclose(matcher.fc.weight, torch.full((1, 6), 1 / 6))


def test_eval_scores_match_reference():
    matcher = reference_matcher().eval()
    with torch.no_grad():
        score = matcher(torch.from_numpy(REF["prob"]), torch.from_numpy(REF["gal"]))
    assert_close_rel(score, REF["score_eval"])


def test_train_scores_use_batch_statistics_like_reference():
    matcher = reference_matcher().train()
    with torch.no_grad():
        score = matcher(torch.from_numpy(REF["prob"]), torch.from_numpy(REF["gal"]))
    assert_close_rel(score, REF["score_train"])
    assert not np.allclose(score.numpy(), REF["score_eval"], atol=1e-2)


def test_matcher_is_symmetric():
    matcher = reference_matcher().eval()
    a, b = random_maps(5, seed=1), random_maps(7, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(matcher(a, b), matcher(b, a).t(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("maps", "message"),
    [
        (torch.zeros(2, 16, 24), r"\[N, C, H, W\]"),
        (torch.zeros(2, 8, 6, 4), r"C, H, W = \(8, 6, 4\).*expects \(16, 6, 4\)"),
        (torch.zeros(2, 16, 4, 6), r"C, H, W = \(16, 4, 6\)"),
        (np.zeros((2, 16, 6, 4)), "torch.Tensor"),
    ],
)
def test_bad_feature_maps_raise_clear_errors(maps, message):
    matcher = QAConv(16, 6, 4).eval()
    with pytest.raises(QAConvError, match=message):
        matcher(maps, random_maps(2))
    with pytest.raises(QAConvError, match=message):
        pairwise_scores(matcher, random_maps(2), maps)
