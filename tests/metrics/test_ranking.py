"""CMC / mAP / mINP: parity with the reference fixture, hand-computed cases, scikit-learn's tie rule, streaming."""

from pathlib import Path

import numpy as np
import pytest

from qaconv.errors import QAConvError
from qaconv.metrics import RankAccumulator, evaluate_rank

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reference"


def _loop_metrics(D, qp, gp, qc, gc, max_rank=100):
    """One query at a time: stable argsort for CMC/INP, scikit-learn for AP (the published protocol)."""
    from sklearn.metrics import average_precision_score

    hist = np.zeros(max_rank)
    aps, inps = [], []
    for i in range(D.shape[0]):
        order = np.argsort(D[i], kind="stable")
        keep = (gp[order] != qp[i]) | (gc[order] != qc[i])
        y = (gp[order] == qp[i])[keep]
        if not y.any():
            continue
        hits = np.flatnonzero(y)
        if hits[0] < max_rank:
            hist[hits[0]] += 1
        aps.append(average_precision_score(y, -D[i][order][keep]))
        inps.append(y.sum() / (hits[-1] + 1))
    return np.cumsum(hist) / len(aps), float(np.mean(aps)), float(np.mean(inps)), len(aps)


def test_parity_with_reference_fixture():
    ref = np.load(FIXTURES / "ranking.npz")
    res = evaluate_rank(ref["distmat"], ref["q_pids"], ref["g_pids"], ref["q_camids"], ref["g_camids"], max_rank=100)
    assert res.cmc.shape == (100,)
    np.testing.assert_allclose(res.cmc, ref["cmc"], rtol=0, atol=1e-6)
    assert abs(res.mAP - float(ref["mAP"])) <= 1e-6


def test_hand_computed_example():
    # query 0 (pid 1, cam 0): gallery 0 is junk (same pid, same cam); the rest ranks
    #   g1 (0.2, neg), g2 (0.3, pos), g4 (0.4, neg), g3 (0.5, pos)
    #   -> first match at rank 2, AP = (1/2 + 2/4) / 2 = 0.5, INP = 2 / 4 = 0.5
    # query 1 (pid 2, cam 1): its only pid-2 image is junk -> skipped
    # query 2 (pid 3, cam 2): g4 (pid 3, cam 0) is nearest -> rank 1, AP = INP = 1
    D = np.array([[0.1, 0.2, 0.3, 0.5, 0.4], [0.5, 0.1, 0.2, 0.3, 0.4], [0.9, 0.8, 0.7, 0.6, 0.05]])
    g_pids, g_cams = np.array([1, 2, 1, 1, 3]), np.array([0, 1, 1, 2, 0])
    res = evaluate_rank(D, [1, 2, 3], g_pids, [0, 1, 2], g_cams, max_rank=5)
    assert res.num_valid == 2 and res.num_query == 3
    np.testing.assert_allclose(res.cmc, [0.5, 1.0, 1.0, 1.0, 1.0])
    assert res.mAP == pytest.approx(0.75)
    assert res.mINP == pytest.approx(0.75)
    np.testing.assert_array_equal(res.first_match, [1, -1, 0])
    assert np.isnan(res.ap[1]) and res.ap[0] == pytest.approx(0.5)
    assert res.rank1 == 0.5 and res.rank5 == 1.0
    assert res.to_dict() == {"rank1": 0.5, "rank5": 1.0, "mAP": 0.75, "mINP": 0.75, "num_valid": 2, "num_query": 3}
    with pytest.raises(QAConvError, match="rank-10"):
        _ = res.rank10


def test_hand_computed_ties():
    # positives at 0.2 and 0.5, a negative tied at 0.2 and one at 0.9.
    # scikit-learn: threshold 0.2 -> P = 1/2, threshold 0.5 -> P = 2/3, AP = (1/2 + 2/3) / 2.
    # CMC/INP break ties by gallery index: the tied negative comes first only when its index is lower.
    pids = np.array([7, 8, 7, 8])
    cams = np.array([1, 1, 1, 1])
    neg_first = evaluate_rank(
        np.array([[0.2, 0.2, 0.5, 0.9]])[:, [1, 0, 2, 3]], [7], pids[[1, 0, 2, 3]], [0], cams, max_rank=4
    )
    pos_first = evaluate_rank(np.array([[0.2, 0.2, 0.5, 0.9]]), [7], pids, [0], cams, max_rank=4)
    for res in (neg_first, pos_first):
        assert res.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)
        assert res.mINP == pytest.approx(2 / 3)
    assert neg_first.first_match[0] == 1 and pos_first.first_match[0] == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ties_follow_scikit_learn(dtype):
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    for trial in range(60):
        q, g = int(rng.integers(1, 25)), int(rng.integers(2, 70))
        D = rng.integers(0, int(rng.integers(1, 6)), (q, g)).astype(dtype)  # very many ties
        qp, gp = rng.integers(0, 5, q), rng.integers(0, 5, g)
        qc, gc = rng.integers(0, 3, q), rng.integers(0, 3, g)
        loop = _loop_metrics(D, qp, gp, qc, gc, max_rank=10) if _has_valid(qp, gp, qc, gc) else None
        if loop is None:
            with pytest.raises(QAConvError):
                evaluate_rank(D, qp, gp, qc, gc, max_rank=10)
            continue
        res = evaluate_rank(D, qp, gp, qc, gc, max_rank=10)
        np.testing.assert_allclose(res.cmc, loop[0], atol=1e-12, err_msg=f"trial {trial}")
        assert res.mAP == pytest.approx(loop[1], abs=1e-12)
        assert res.mINP == pytest.approx(loop[2], abs=1e-12)
        assert res.num_valid == loop[3]


def _has_valid(qp, gp, qc, gc):
    return bool((((gp[None] == qp[:, None]) & (gc[None] != qc[:, None])).any(axis=1)).any())


def test_matches_published_loop_on_continuous_distances():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(1)
    D = rng.random((40, 300))
    qp, gp = rng.integers(0, 20, 40), rng.integers(0, 20, 300)
    qc, gc = rng.integers(0, 4, 40), rng.integers(0, 4, 300)
    res = evaluate_rank(D, qp, gp, qc, gc)
    cmc, mAP, mINP, nv = _loop_metrics(D, qp, gp, qc, gc)
    np.testing.assert_allclose(res.cmc, cmc, atol=1e-12)
    assert res.mAP == pytest.approx(mAP, abs=1e-12) and res.mINP == pytest.approx(mINP, abs=1e-12)


def test_matches_published_loop_when_true_matches_rank_high():
    # a trained model: true matches near the top, so most rows are sorted only up to their last one
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(3)
    qp, gp = rng.integers(0, 30, 60), rng.integers(0, 30, 900)
    qc, gc = rng.integers(0, 4, 60), rng.integers(0, 4, 900)
    D = rng.random((60, 900)) + 3.0 * (qp[:, None] != gp[None, :])
    D[::7] = rng.random((9, 900))  # and some rows where they do not
    res = evaluate_rank(D, qp, gp, qc, gc)
    cmc, mAP, mINP, nv = _loop_metrics(D, qp, gp, qc, gc)
    np.testing.assert_allclose(res.cmc, cmc, atol=1e-12)
    assert res.mAP == pytest.approx(mAP, abs=1e-12) and res.mINP == pytest.approx(mINP, abs=1e-12)
    assert res.num_valid == nv
    D[5, np.flatnonzero(gp != qp[5])[-1]] = np.nan  # a NaN ranked after every true match still fails
    with pytest.raises(QAConvError, match="non-finite .* row 5"):
        evaluate_rank(D, qp, gp, qc, gc)


def test_streaming_blocks_equal_one_shot():
    rng = np.random.default_rng(2)
    D = rng.integers(0, 50, (97, 130)).astype(np.float32)
    qp, gp = rng.integers(0, 15, 97), rng.integers(0, 15, 130)
    qc, gc = rng.integers(0, 3, 97), rng.integers(0, 3, 130)
    whole = evaluate_rank(D, qp, gp, qc, gc, max_rank=30)
    for block, chunk, threads in [(1, 1 << 22, 1), (10, 300, 2), (33, 1, 3), (97, 1000, 4)]:
        acc = RankAccumulator(30, chunk_elements=chunk, num_threads=threads)
        for s in range(0, 97, block):
            acc.update(D[s : s + block], qp[s : s + block], qc[s : s + block], gp, gc)
        res = acc.result()
        np.testing.assert_array_equal(res.cmc, whole.cmc)
        assert res.mAP == whole.mAP and res.mINP == whole.mINP and res.num_valid == whole.num_valid
        np.testing.assert_array_equal(res.first_match, whole.first_match)
    assert acc.num_query == 97


def test_torch_input():
    torch = pytest.importorskip("torch")
    ref = np.load(FIXTURES / "ranking.npz")
    res = evaluate_rank(
        torch.from_numpy(ref["distmat"]),
        *(torch.from_numpy(ref[k]) for k in ("q_pids", "g_pids", "q_camids", "g_camids")),
    )
    assert abs(res.mAP - float(ref["mAP"])) <= 1e-6


def test_errors():
    D = np.zeros((2, 3))
    with pytest.raises(QAConvError, match="no valid query in test set 'market'"):
        evaluate_rank(D, [1, 2], [1, 1, 1], [0, 0], [0, 0, 0], name="market")
    with pytest.raises(QAConvError, match="no valid query"):
        evaluate_rank(np.zeros((2, 0)), [1, 2], [], [0, 0], [])
    with pytest.raises(QAConvError, match="g_camids has 2 entries .* 3 columns"):
        evaluate_rank(D, [1, 2], [1, 1, 1], [0, 0], [0, 0])
    with pytest.raises(QAConvError, match="q_pids has 3 entries .* 2 rows"):
        evaluate_rank(D, [1, 2, 3], [1, 1, 1], [0, 0], [0, 0, 0])
    for bad in (np.nan, np.inf, -np.inf):
        E = np.ones((2, 3))
        E[1, 2] = bad
        with pytest.raises(QAConvError, match="non-finite .* row 1"):
            evaluate_rank(E, [1, 2], [1, 2, 2], [0, 0], [1, 1, 1])
    with pytest.raises(QAConvError, match="2-D"):
        evaluate_rank(np.zeros(3), [1], [1, 1, 1], [0], [0, 0, 0])
    with pytest.raises(QAConvError, match="max_rank"):
        RankAccumulator(0)
    acc = RankAccumulator(5)
    acc.update(np.ones((1, 3)), [1], [0], [1, 2, 2], [1, 1, 1])
    with pytest.raises(QAConvError, match="4 gallery columns but earlier blocks had 3"):
        acc.update(np.ones((1, 4)), [1], [0], [1, 2, 2, 2], [1, 1, 1, 1])
