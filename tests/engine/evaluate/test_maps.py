"""evaluate_maps: streaming equals the dense computation, the stages follow the published order, errors."""

import numpy as np
import pytest
import torch

from qaconv.config import EvaluationConfig
from qaconv.engine.evaluate import Side, evaluate_maps, top_n
from qaconv.errors import QAConvError
from qaconv.matching import QAConv
from qaconv.metrics import evaluate_rank, tlift
from tests.conftest import load_reference
from tests.engine.evaluate.problems import assert_same_metrics, dense_scores, make_matcher, make_problem, sides


def test_streaming_equals_the_reference_matcher_scores():
    ref = load_reference("qaconv_matcher.npz")
    matcher = QAConv(16, 6, 4)
    matcher.load_state_dict({k.removeprefix("state."): torch.from_numpy(v) for k, v in ref.items() if "state." in k})
    q_pids, q_cams = np.array([1, 2, 3, 1, 2]), np.array([0, 0, 1, 1, 0])
    g_pids, g_cams = np.array([1, 2, 3, 1, 2, 3, 0]), np.array([1, 1, 0, 0, 1, 1, 0])
    res = evaluate_maps(
        matcher,
        torch.from_numpy(ref["prob"]),
        torch.from_numpy(ref["gal"]),
        *sides(q_pids, q_cams, g_pids, g_cams),
        options=EvaluationConfig(prob_block=2, gal_block=3, save_scores=True),
    )
    np.testing.assert_allclose(res.scores, ref["score_eval"], rtol=1e-4)
    assert_same_metrics(res.metrics["raw"], evaluate_rank(-ref["score_eval"], q_pids, g_pids, q_cams, g_cams))


@pytest.mark.parametrize("prob_block, gal_block", [(1, 1), (4, 7), (13, 29), (256, 4096)])
def test_block_sizes_do_not_change_the_results(prob_block, gal_block):
    matcher = make_matcher()
    q, g, q_pids, q_cams, g_pids, g_cams = make_problem()
    dense = dense_scores(matcher, q, g)
    expected = evaluate_rank(-dense, q_pids, g_pids, q_cams, g_cams)
    assert 0 < expected.mAP < 1
    opts = EvaluationConfig(prob_block=prob_block, gal_block=gal_block, save_scores=True, report=4)
    res = evaluate_maps(matcher, q, g, *sides(q_pids, q_cams, g_pids, g_cams), options=opts)
    assert list(res.metrics) == ["raw"]
    assert_same_metrics(res.metrics["raw"], expected)
    np.testing.assert_allclose(res.scores, dense, atol=1e-5)
    np.testing.assert_array_equal(res.top, top_n(-dense, *sides(q_pids, q_cams, g_pids, g_cams), 4))
    assert set(res.to_dict()) == {"raw", "seconds"}


def test_rerank_and_tlift_stages_follow_the_published_order():
    matcher = make_matcher()
    q, g, q_pids, q_cams, g_pids, g_cams = make_problem(num_query=12, num_gallery=30)
    rng = np.random.default_rng(0)
    q_t, g_t = rng.uniform(0, 500, 12), rng.uniform(0, 500, 30)
    opts = EvaluationConfig(rerank=True, tlift=True, k1=5, k2=3, tau=80, report=3)
    res = evaluate_maps(matcher, q, g, *sides(q_pids, q_cams, g_pids, g_cams, q_t, g_t), options=opts, num_cams=3)
    assert list(res.metrics) == ["raw", "rerank", "tlift"] and res.final_stage == "tlift"
    assert res.scores is None  # not asked to keep them
    expected_score = tlift(1 - res.rerank_dist, g_cams, g_t, q_cams, q_t, 3, tau=80)
    np.testing.assert_allclose(res.tlift_score, expected_score)
    assert_same_metrics(res.metrics["tlift"], evaluate_rank(1 - expected_score, q_pids, g_pids, q_cams, g_cams))
    assert_same_metrics(res.metrics["rerank"], evaluate_rank(res.rerank_dist, q_pids, g_pids, q_cams, g_cams))
    np.testing.assert_array_equal(res.top, top_n(1 - expected_score, *sides(q_pids, q_cams, g_pids, g_cams), 3))


def test_tlift_without_rerank_lifts_sigmoid_scores_and_needs_times():
    matcher = make_matcher()
    q, g, q_pids, q_cams, g_pids, g_cams = make_problem()
    q_t, g_t = np.linspace(0, 300, 13), np.linspace(0, 300, 29)
    with_times = sides(q_pids, q_cams, g_pids, g_cams, q_t, g_t)
    res = evaluate_maps(matcher, q, g, *with_times, options=EvaluationConfig(tlift=True))
    lifted = tlift(1 / (1 + np.exp(-dense_scores(matcher, q, g) / 10)), g_cams, g_t, q_cams, q_t, 3)
    np.testing.assert_allclose(res.tlift_score, lifted, atol=1e-5)
    assert list(res.metrics) == ["raw", "tlift"]
    no_times = evaluate_maps(
        matcher, q, g, *sides(q_pids, q_cams, g_pids, g_cams), options=EvaluationConfig(tlift=True)
    )
    assert list(no_times.metrics) == ["raw"] and "TLift skipped" in no_times.to_dict()["notes"][0]


def test_user_errors_are_one_line_and_name_the_problem():
    matcher = make_matcher()
    q, g, q_pids, q_cams, g_pids, g_cams = make_problem()
    labels = sides(q_pids, q_cams, g_pids, g_cams)
    with pytest.raises(QAConvError, match="g_camids has 28 entries but there are 29"):
        Side.of("g", len(g), g_pids, g_cams[:-1])
    with pytest.raises(QAConvError, match="the gallery labels have 28 entries but there are 29 gallery maps"):
        evaluate_maps(matcher, q, g, labels[0], labels[1].rows(0, 28))
    bad = q.clone()
    bad[3, 0, 0, 0] = float("nan")
    with pytest.raises(QAConvError, match="non-finite QAConv score .* query 3 of toy"):
        evaluate_maps(matcher, bad, g, *labels, name="toy", options=EvaluationConfig(prob_block=2))
    with pytest.raises(QAConvError, match="no valid query in test set 'toy'"):
        evaluate_maps(matcher, q, g, *sides(q_pids + 100, q_cams, g_pids, g_cams), name="toy")
    with pytest.raises(QAConvError, match="needs query and gallery"):
        evaluate_maps(matcher, q[:0], g, labels[0].rows(0, 0), labels[1])
    with pytest.raises(QAConvError, match="--dtype float16 needs a CUDA device"):
        evaluate_maps(matcher, q, g, *labels, options=EvaluationConfig(dtype="float16"))


def test_bfloat16_scoring_stays_close_to_float32():
    matcher = make_matcher()
    q, g, q_pids, q_cams, g_pids, g_cams = make_problem()
    opts = EvaluationConfig(dtype="bfloat16", save_scores=True)
    res = evaluate_maps(matcher, q, g, *sides(q_pids, q_cams, g_pids, g_cams), options=opts)
    np.testing.assert_allclose(res.scores, dense_scores(matcher, q, g), atol=0.1)
