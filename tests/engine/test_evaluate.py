"""Evaluation engine on feature maps: streaming equals the dense computation, re-ranking/TLift plumbing,
top-N lists, the feature cache and the user errors."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qaconv.engine import evaluate as ev
from qaconv.engine.evaluate import EvalOptions, Side, evaluate_maps, rerank_maps, top_n
from qaconv.errors import QAConvError
from qaconv.matching import QAConv, pair_scores
from qaconv.metrics import evaluate_rank, k_reciprocal_rerank, tlift
from qaconv.viz import select_queries
from tests.conftest import load_reference

C, H, W = 8, 3, 2


def make_matcher(seed=0):
    torch.manual_seed(seed)
    matcher = QAConv(C, H, W)
    with torch.no_grad():
        matcher.fc.weight.normal_()
        matcher.bn.running_mean.fill_(0.3)
        matcher.bn.running_var.fill_(2.0)
        matcher.logit_bn.weight.fill_(1.5)
        matcher.logit_bn.running_mean.fill_(0.5)  # centres the logits: some are negative, some positive
    return matcher.eval()


def make_problem(num_query=13, num_gallery=29, num_ids=5, seed=0):
    """Maps that cluster by identity, so the metrics are neither 0 nor 1."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(num_ids + 1, C, H, W, generator=g)
    q_pids = torch.randint(1, num_ids + 1, (num_query,), generator=g)
    g_pids = torch.randint(0, num_ids + 1, (num_gallery,), generator=g)
    q_cams = torch.randint(0, 3, (num_query,), generator=g)
    g_cams = torch.randint(0, 3, (num_gallery,), generator=g)

    def maps(pids):
        return F.normalize(protos[pids] + 1.5 * torch.randn(len(pids), C, H, W, generator=g), dim=1)

    return maps(q_pids), maps(g_pids), q_pids.numpy(), q_cams.numpy(), g_pids.numpy(), g_cams.numpy()


def sides(q_pids, q_cams, g_pids, g_cams, q_times=None, g_times=None):
    return Side.of("q", len(q_pids), q_pids, q_cams, q_times), Side.of("g", len(g_pids), g_pids, g_cams, g_times)


def dense_scores(matcher, prob, gal):
    with torch.no_grad():
        return matcher.eval()(prob, gal).numpy()


def assert_same_metrics(a, b):
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert a.mAP == pytest.approx(b.mAP, abs=1e-12)
    assert a.mINP == pytest.approx(b.mINP, abs=1e-12)
    assert a.num_valid == b.num_valid


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
        options=EvalOptions(prob_block=2, gal_block=3, save_scores=True),
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
    opts = EvalOptions(prob_block=prob_block, gal_block=gal_block, save_scores=True, report=4)
    res = evaluate_maps(matcher, q, g, *sides(q_pids, q_cams, g_pids, g_cams), options=opts)
    assert list(res.metrics) == ["raw"]
    assert_same_metrics(res.metrics["raw"], expected)
    np.testing.assert_allclose(res.scores, dense, atol=1e-5)
    np.testing.assert_array_equal(res.top, top_n(-dense, *sides(q_pids, q_cams, g_pids, g_cams), 4))
    assert set(res.to_dict()) == {"raw", "seconds"}


def test_top_n_leaves_out_same_id_same_camera_and_pads():
    dist = np.array([[0.1, 0.5, 0.2, 0.2, 0.9], [0.3, 0.3, 0.3, 0.0, 0.1]])
    q_pids, q_cams = np.array([1, 2]), np.array([0, 1])
    g_pids, g_cams = np.array([1, 2, 1, 2, 2]), np.array([0, 0, 1, 1, 1])
    # row 0: gallery 0 is junk (pid 1, cam 0); row 1: gallery 3 and 4 are junk (pid 2, cam 1)
    query, gallery = sides(q_pids, q_cams, g_pids, g_cams)
    np.testing.assert_array_equal(top_n(dist, query, gallery, 3), [[2, 3, 1], [0, 1, 2]])
    np.testing.assert_array_equal(top_n(dist, query, gallery, 5)[1], [0, 1, 2, -1, -1])


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
    opts = EvalOptions(prob_block=5, gal_block=8, k1=5, k2=3, rerank_dist=kind)
    got = rerank_maps(matcher, q, g, options=opts, dtype=torch.float32, device=torch.device("cpu"))
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_rerank_with_positive_scores_only_names_the_option():
    matcher = make_matcher()
    with torch.no_grad():
        matcher.logit_bn.running_mean.fill_(-50.0)  # every score > 0, so -score is never positive
    q, g, *_ = make_problem(num_query=4, num_gallery=6)
    with pytest.raises(QAConvError, match="--rerank-dist sigmoid"):
        rerank_maps(matcher, q, g, options=EvalOptions(k1=3, k2=2), dtype=torch.float32, device=torch.device("cpu"))


def test_rerank_and_tlift_stages_follow_the_published_order():
    matcher = make_matcher()
    q, g, q_pids, q_cams, g_pids, g_cams = make_problem(num_query=12, num_gallery=30)
    rng = np.random.default_rng(0)
    q_t, g_t = rng.uniform(0, 500, 12), rng.uniform(0, 500, 30)
    opts = EvalOptions(rerank=True, tlift=True, k1=5, k2=3, tau=80, report=3)
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
    res = evaluate_maps(matcher, q, g, *with_times, options=EvalOptions(tlift=True))
    lifted = tlift(1 / (1 + np.exp(-dense_scores(matcher, q, g) / 10)), g_cams, g_t, q_cams, q_t, 3)
    np.testing.assert_allclose(res.tlift_score, lifted, atol=1e-5)
    assert list(res.metrics) == ["raw", "tlift"]
    no_times = evaluate_maps(matcher, q, g, *sides(q_pids, q_cams, g_pids, g_cams), options=EvalOptions(tlift=True))
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
        evaluate_maps(matcher, bad, g, *labels, name="toy", options=EvalOptions(prob_block=2))
    with pytest.raises(QAConvError, match="no valid query in test set 'toy'"):
        evaluate_maps(matcher, q, g, *sides(q_pids + 100, q_cams, g_pids, g_cams), name="toy")
    with pytest.raises(QAConvError, match="needs query and gallery"):
        evaluate_maps(matcher, q[:0], g, labels[0].rows(0, 0), labels[1])
    with pytest.raises(QAConvError, match="--dtype float16 needs a CUDA device"):
        evaluate_maps(matcher, q, g, *labels, options=EvalOptions(dtype="float16"))


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"prob_block": 0}, "--prob-block must be a positive integer"),
        ({"dtype": "fp8"}, "--dtype must be"),
        ({"rerank_dist": "cosine"}, "--rerank-dist must be one of"),
        ({"report": -1}, "--report must be >= 0"),
        ({"K": 1000, "tlift": True}, "--K must be at most 100"),
        ({"K": 0}, "--K must be a positive integer"),
        ({"alpha": -1, "tlift": True}, "--alpha must be >= 0"),
        ({"alpha": float("nan")}, "--alpha must be >= 0"),
        ({"tau": float("inf")}, "--tau and --sigma must be positive"),
        ({"sigma": 0}, "--tau and --sigma must be positive"),
        ({"lambda_value": 1.5}, "--lambda-value must be in"),
        ({"k1": 3, "k2": 5}, "--k2 must be at most --k1 \\+ 1"),
    ],
)
def test_options_out_of_range_are_refused_by_flag(bad, message):
    with pytest.raises(QAConvError, match=message):
        EvalOptions(**bad)
    options = EvalOptions()
    for name, value in bad.items():
        setattr(options, name, value)
    with pytest.raises(QAConvError, match=message):
        options.validate()  # the one check, also for options edited after construction


def test_bfloat16_scoring_stays_close_to_float32():
    matcher = make_matcher()
    q, g, q_pids, q_cams, g_pids, g_cams = make_problem()
    opts = EvalOptions(dtype="bfloat16", save_scores=True)
    res = evaluate_maps(matcher, q, g, *sides(q_pids, q_cams, g_pids, g_cams), options=opts)
    np.testing.assert_allclose(res.scores, dense_scores(matcher, q, g), atol=0.1)


def test_select_queries_best_and_worst_by_ap():
    ap = np.array([0.5, np.nan, 1.0, 0.2, 0.5, 0.9])
    assert select_queries(ap, 2) == ([2, 5], [3, 0])
    assert select_queries(ap, 4) == ([2, 5, 0, 4], [3])  # never in both lists; NaN never shown


def test_read_results_rejects_a_broken_file(tmp_path):
    assert ev.read_results(tmp_path / "results.json") == {}
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(QAConvError, match="results.json exists but is not a readable JSON"):
        ev.read_results(tmp_path / "results.json")
    (tmp_path / "results.json").write_text(json.dumps([1, 2]))
    with pytest.raises(QAConvError, match="holds a JSON list"):
        ev.read_results(tmp_path / "results.json")


def test_load_testset_errors(tmp_path):
    with pytest.raises(QAConvError, match="--testset nosuchset: unknown data set .*market1501"):
        ev.load_testset("nosuchset", tmp_path)
    with pytest.raises(QAConvError, match="--testset msmt17: data set msmt17 not found under .*MSMT17_V1"):
        ev.load_testset("msmt17", tmp_path)


def test_load_testset_accepts_a_folder_of_csv_lists(tmp_path):
    (tmp_path / "query.csv").write_text("path,pid,camid\nq1.jpg,1,0\n")
    (tmp_path / "gallery.csv").write_text("path,pid,camid\ng1.jpg,1,1\ng2.jpg,2,0\n")
    label, ds = ev.load_testset(str(tmp_path), "unused")
    assert label == tmp_path.name and (len(ds.query), len(ds.gallery)) == (1, 2)
