"""Memory-bounded all-pairs scoring: blocks, tiles, dtypes and the eval-mode scores they must equal."""

import pytest
import torch

from qaconv.errors import QAConvError
from qaconv.matching import QAConv, pair_scores, pairwise_scores, score_blocks
from qaconv.matching.scoring import tile_bytes, tile_shape
from tests.matching.conftest import REF, assert_close_rel, random_maps, reference_matcher


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


def test_tile_shape_keeps_a_tile_within_the_budget_and_the_blocks():
    assert tile_shape(10, 4, 16 * 400, 100, 100) == (4, 4)  # 16 pairs of 10 x 10 float32 similarities
    assert tile_shape(10, 4, 16 * 400, 2, 100) == (2, 8)  # a small probe block leaves room for galleries
    assert tile_shape(10, 4, 1, 100, 100) == (1, 1)  # never less than one pair
    probes, galleries = tile_shape(24, 2, 10**6, 256, 4096)
    assert probes * galleries * 24 * 24 * 2 <= 10**6 and probes * galleries > 0.9 * 10**6 / (24 * 24 * 2)


def test_tile_bytes_is_the_given_size_or_the_cpu_default():
    cpu = torch.device("cpu")
    assert tile_bytes(cpu) == 8 * 2**20
    assert tile_bytes(cpu, 0.5) == 2**19


def test_pair_scores_are_the_diagonal_of_all_pairs_in_any_chunking(monkeypatch):
    matcher = reference_matcher().eval()
    prob, gal = random_maps(5, seed=10), random_maps(5, seed=11)
    diagonal = pairwise_scores(matcher, prob, gal).diagonal()
    torch.testing.assert_close(pair_scores(matcher, prob, gal), diagonal, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr("qaconv.matching.scoring.CPU_TILE_MIB", 0)  # one pair per chunk
    torch.testing.assert_close(pair_scores(matcher, prob, gal), diagonal, rtol=1e-5, atol=1e-5)
    with pytest.raises(QAConvError, match="as many probe as gallery maps, got 5 and 4"):
        pair_scores(matcher, prob, gal[:4])


def test_score_blocks_go_to_the_requested_device_in_float32():
    matcher = QAConv(16, 6, 4).eval()
    blocks = list(score_blocks(matcher, random_maps(3), random_maps(4), dtype=torch.bfloat16, device="cpu"))
    assert [(p0, g0) for p0, g0, _ in blocks] == [(0, 0)]
    assert blocks[0][2].dtype == torch.float32 and blocks[0][2].device.type == "cpu"
