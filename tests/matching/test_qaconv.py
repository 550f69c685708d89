import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qaconv.errors import QAConvError
from qaconv.losses import PairwiseMatchingLoss, TripletLoss
from qaconv.matching import QAConv, pairwise_scores, score_blocks
from tests.conftest import load_reference

REF = load_reference("qaconv_matcher.npz")


def reference_matcher() -> QAConv:
    matcher = QAConv(*REF["prob"].shape[1:])
    state = {k.removeprefix("state."): torch.from_numpy(v) for k, v in REF.items() if k.startswith("state.")}
    matcher.load_state_dict(state)
    return matcher


def random_maps(n, c=16, h=6, w=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, c, h, w, generator=g), dim=1)


def assert_close_rel(actual, expected, rel=1e-4):
    actual, expected = np.asarray(actual), np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=rel, atol=rel * np.abs(expected).mean())


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


def test_triplet_loss_matches_reference():
    loss_fn = TripletLoss(reference_matcher().train(), margin=float(REF["triplet_margin"]))
    loss, acc = loss_fn(torch.from_numpy(REF["triplet_feat"]), torch.from_numpy(REF["triplet_labels"]))
    assert_close_rel(loss.detach(), REF["triplet_loss"])
    np.testing.assert_array_equal(acc.numpy(), REF["triplet_acc"])


def test_matcher_is_symmetric():
    matcher = reference_matcher().eval()
    a, b = random_maps(5, seed=1), random_maps(7, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(matcher(a, b), matcher(b, a).t(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("prob_block", "gal_block", "tile_mib"), [(256, 4096, None), (3, 2, None), (4, 5, 1e-3)])
def test_pairwise_scores_equal_forward_for_any_block_size(prob_block, gal_block, tile_mib):
    matcher = reference_matcher().eval()
    prob, gal = random_maps(11, seed=3), random_maps(13, seed=4)
    with torch.no_grad():
        expected = matcher(prob, gal)
    scores = pairwise_scores(matcher, prob, gal, prob_block=prob_block, gal_block=gal_block, tile_mib=tile_mib)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


def test_pairwise_scores_use_running_statistics_even_in_train_mode():
    matcher = reference_matcher()
    prob, gal = torch.from_numpy(REF["prob"]), torch.from_numpy(REF["gal"])
    assert_close_rel(pairwise_scores(matcher.train(), prob, gal), REF["score_eval"])
    assert matcher.training


def test_bfloat16_scores_within_bfloat16_tolerance():
    matcher = reference_matcher().eval()
    prob, gal = random_maps(9, seed=5), random_maps(10, seed=6)
    exact = pairwise_scores(matcher, prob, gal)
    approx = pairwise_scores(matcher, prob, gal, dtype=torch.bfloat16)
    # bfloat16 keeps 8 mantissa bits: similarities in [-1, 1] round by <= 2^-8.
    spread = float(exact.max() - exact.min())
    assert float((approx - exact).abs().max()) < 0.05 * spread
    assert not torch.equal(approx, exact)


def test_score_blocks_cover_every_pair_once_in_row_major_order():
    matcher = reference_matcher().eval()
    prob, gal = random_maps(5, seed=7), random_maps(7, seed=8)
    starts = [
        (p0, g0, tuple(block.shape)) for p0, g0, block in score_blocks(matcher, prob, gal, prob_block=2, gal_block=3)
    ]
    assert starts == [(p, g, (min(2, 5 - p), min(3, 7 - g))) for p in (0, 2, 4) for g in (0, 3, 6)]


def test_score_blocks_are_ordinary_tensors():
    matcher = reference_matcher().eval()
    _, _, block = next(score_blocks(matcher, random_maps(2), random_maps(2)))
    block += 1  # would raise for an inference tensor outside inference mode
    assert not block.requires_grad


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


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prob_block": 0}, "prob_block must be a positive number"),
        ({"gal_block": -1}, "gal_block must be a positive number"),
        ({"tile_mib": 0}, "tile_mib must be positive"),
        ({"dtype": torch.float16}, "float16 is not supported on cpu"),
    ],
)
def test_bad_scoring_options_raise_clear_errors(kwargs, message):
    matcher = QAConv(16, 6, 4).eval()
    with pytest.raises(QAConvError, match=message):
        pairwise_scores(matcher, random_maps(2), random_maps(2), **kwargs)


def test_bad_labels_raise_clear_error():
    with pytest.raises(QAConvError, match="one label per feature map"):
        TripletLoss(QAConv(16, 6, 4))(random_maps(4), torch.tensor([0, 1]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_scores_agree_with_the_cpu_within_the_dtype_tolerance(dtype):
    matcher = reference_matcher().eval()
    prob, gal = random_maps(33, seed=7), random_maps(70, seed=8)
    exact = pairwise_scores(matcher, prob, gal)
    scores = pairwise_scores(matcher.cuda(), prob.cuda(), gal.cuda(), dtype=dtype, gal_block=16)
    assert scores.device.type == "cuda" and scores.dtype == torch.float32
    spread = float(exact.max() - exact.min())
    # float32 may use TF32 only where torch allows it (off for matmul by default): near-exact.
    tolerance = {torch.float32: 1e-4, torch.float16: 0.01, torch.bfloat16: 0.05}[dtype]
    assert float((scores.cpu() - exact).abs().max()) < tolerance * spread
