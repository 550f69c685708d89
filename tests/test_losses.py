"""Losses on the QAConv score matrix of a batch: the registry, the triplet and the pairwise loss."""

import numpy as np
import pytest
import torch

from qaconv.errors import QAConvError
from qaconv.losses import LOSSES, PairwiseMatchingLoss, TripletLoss, WarmupLoss, build_loss, register_loss
from qaconv.matching import QAConv
from tests.matching.conftest import REF, assert_close_rel, random_maps, reference_matcher


def test_triplet_loss_matches_reference():
    loss_fn = TripletLoss(reference_matcher().train(), margin=float(REF["triplet_margin"]))
    loss, acc = loss_fn(torch.from_numpy(REF["triplet_feat"]), torch.from_numpy(REF["triplet_labels"]))
    assert_close_rel(loss.detach(), REF["triplet_loss"])
    np.testing.assert_array_equal(acc.numpy(), REF["triplet_acc"])


def test_gradients_reach_features_and_matcher():
    matcher = QAConv(16, 6, 4).train()
    feats = random_maps(6, seed=9).requires_grad_()
    loss, _ = TripletLoss(matcher)(feats, torch.tensor([0, 0, 1, 1, 2, 2]))
    loss.mean().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert matcher.fc.weight.grad is not None and matcher.bn.weight.grad is not None


def test_pairwise_matching_loss_is_bce_over_all_pairs():
    matcher = reference_matcher().train()
    feats, labels = torch.from_numpy(REF["triplet_feat"]), torch.from_numpy(REF["triplet_labels"])
    loss, acc = PairwiseMatchingLoss(matcher)(feats, labels)
    with torch.no_grad():
        score = reference_matcher().train()(feats, feats).numpy().astype(np.float64)
    target = (REF["triplet_labels"][:, None] == REF["triplet_labels"][None, :]).astype(np.float64)
    prob = 1 / (1 + np.exp(-score))
    expected = -(target * np.log(prob) + (1 - target) * np.log(1 - prob)).sum(axis=1)
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-5)
    np.testing.assert_array_equal(acc.numpy(), REF["triplet_acc"])


def test_anchor_without_positive_gets_zero_loss():
    matcher = QAConv(16, 6, 4).train()
    loss, acc = TripletLoss(matcher)(random_maps(4), torch.tensor([0, 0, 1, 2]))
    assert loss[2] == 0 and loss[3] == 0 and acc[2] == 1


def test_bad_labels_raise_clear_error():
    with pytest.raises(QAConvError, match="one label per feature map"):
        TripletLoss(QAConv(16, 6, 4))(random_maps(4), torch.tensor([0, 1]))


class FixedScores(torch.nn.Module):
    """A matcher stand-in whose batch scores are given, so a loss can be worked out by hand."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def forward(self, prob, gal):
        return self.scores


# labels [0, 0, 1, 1]: hardest positives (5, 5, 3, 3), hardest negatives (2, 7, 7, 2)
HAND_SCORES = [[9.0, 5, 1, 2], [5, 9, 7, 0], [1, 7, 9, 3], [2, 0, 3, 9]]
HAND_LABELS = torch.tensor([0, 0, 1, 1])


@pytest.mark.parametrize(("margin", "expected"), [(4.0, [1, 6, 8, 3]), (0.0, [0, 2, 4, 0])])
def test_triplet_loss_by_hand(margin, expected):
    loss, acc = TripletLoss(FixedScores(torch.tensor(HAND_SCORES)), margin)(torch.zeros(4, 1), HAND_LABELS)
    assert loss.tolist() == expected
    assert acc.tolist() == [1, 0, 0, 1]  # the hardest positive at least as high as the hardest negative


def test_only_the_hardest_pairs_of_violating_anchors_get_gradient():
    scores = torch.tensor(HAND_SCORES, requires_grad=True)
    loss, _ = TripletLoss(FixedScores(scores), margin=0.0)(torch.zeros(4, 1), HAND_LABELS)
    loss.sum().backward()
    expected = [[0, 0, 0, 0], [-1, 0, 1, 0], [0, 1, 0, -1], [0, 0, 0, 0]]
    assert scores.grad.tolist() == expected


def test_pairwise_loss_by_hand_and_its_gradient_is_sigmoid_minus_target():
    scores = torch.tensor(HAND_SCORES, requires_grad=True)
    loss, acc = PairwiseMatchingLoss(FixedScores(scores))(torch.zeros(4, 1), HAND_LABELS)
    same = (HAND_LABELS[:, None] == HAND_LABELS[None, :]).numpy()
    s = np.array(HAND_SCORES)
    expected = np.where(same, np.log1p(np.exp(-s)), np.log1p(np.exp(s))).sum(axis=1)
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-6)
    assert acc.tolist() == [1, 0, 0, 1]
    loss.sum().backward()
    np.testing.assert_allclose(scores.grad.numpy(), 1 / (1 + np.exp(-s)) - same, rtol=1e-5, atol=1e-6)


def test_a_batch_of_one_identity_has_no_negatives_and_zero_triplet_loss():
    loss, acc = TripletLoss(FixedScores(torch.tensor(HAND_SCORES)))(torch.zeros(4, 1), torch.zeros(4))
    assert loss.tolist() == [0, 0, 0, 0] and acc.tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize("loss_class", [TripletLoss, PairwiseMatchingLoss])
def test_last_spread_is_the_standard_deviation_of_the_last_scores(loss_class):
    scores = torch.tensor(HAND_SCORES, requires_grad=True)
    criterion = loss_class(FixedScores(scores))
    assert criterion.last_spread is None
    criterion(torch.zeros(4, 1), HAND_LABELS)
    assert criterion.last_spread.item() == pytest.approx(np.std(HAND_SCORES, ddof=1))
    assert not criterion.last_spread.requires_grad


def test_both_losses_are_registered_and_built_by_name():
    matcher = QAConv(16, 6, 4)
    assert LOSSES["triplet"] is TripletLoss and LOSSES["pairwise"] is PairwiseMatchingLoss
    triplet = build_loss("triplet", matcher, margin=3.0)
    assert isinstance(triplet, TripletLoss) and triplet.matcher is matcher and triplet.margin == 3.0
    assert TripletLoss.from_options(matcher).margin == 16.0  # the published margin
    pairwise = build_loss("pairwise", matcher, margin=3.0)  # no margin to take
    assert isinstance(pairwise, PairwiseMatchingLoss) and pairwise.matcher is matcher


def test_an_unknown_loss_is_refused_with_the_registered_names():
    with pytest.raises(QAConvError, match="--loss must be one of triplet, pairwise, got 'arcface'"):
        build_loss("arcface", QAConv(16, 6, 4))


def test_a_registered_loss_is_built_by_its_name(monkeypatch):
    monkeypatch.setattr("qaconv.losses.LOSSES", dict(LOSSES))

    @register_loss("echo")
    class Echo:
        @classmethod
        def from_options(cls, matcher, *, margin):
            return matcher, {"margin": margin}

    assert build_loss("echo", "m", margin=1.0) == ("m", {"margin": 1.0})
    assert "echo" not in LOSSES


def test_the_warmup_loss_trains_its_epochs_and_the_main_loss_after_them():
    scores = torch.tensor(HAND_SCORES)
    matcher = FixedScores(scores)
    pairwise, triplet = PairwiseMatchingLoss(matcher), TripletLoss(matcher, margin=4.0)
    criterion = WarmupLoss(pairwise, triplet)
    features = torch.zeros(4, 1)
    for epoch, expected in [(1, pairwise), (2, pairwise), (3, triplet), (7, triplet)]:
        criterion.set_epoch(epoch, warmup=expected is pairwise)
        loss, _ = criterion(features, HAND_LABELS)
        torch.testing.assert_close(loss, expected(features, HAND_LABELS)[0])
        assert criterion.name == expected.name and criterion.last_spread is expected.last_spread
    assert (pairwise.name, triplet.name) == ("pairwise", "triplet") and criterion.matcher is matcher


def test_the_warmup_loss_and_the_main_loss_share_the_matcher():
    with pytest.raises(QAConvError, match="must share one matcher"):
        WarmupLoss(PairwiseMatchingLoss(QAConv(16, 6, 4)), TripletLoss(QAConv(16, 6, 4)))
