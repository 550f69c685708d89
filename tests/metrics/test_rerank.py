"""k-reciprocal re-ranking: parity with the reference fixture, dense loop oracle, blockwise input, properties."""

from pathlib import Path

import numpy as np
import pytest

from qaconv.errors import QAConvError
from qaconv.metrics import k_reciprocal_rerank, k_reciprocal_rerank_blockwise

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reference"


def _dense_oracle(D, num_query, k1=20, k2=6, lam=0.3):
    """The reference arithmetic item by item on dense matrices (float32 distances, float16 V and Jaccard)."""
    od = (D.astype(np.float32) / D.astype(np.float32).max(axis=0)).T
    n = od.shape[0]
    order = np.argsort(od, axis=1, kind="stable")
    kh = int(np.around(k1 / 2.0))

    def recip(i, k):
        nb = order[i, : k + 1]
        return [int(j) for j in nb if i in order[j, : k + 1]]

    V = np.zeros((n, n), dtype=np.float16)
    for i in range(n):
        r = recip(i, k1)
        expanded = set(r)
        for c in r:
            h = recip(c, kh)
            if len(set(h) & set(r)) > 2.0 / 3.0 * len(h):
                expanded |= set(h)
        cols = np.array(sorted(expanded))
        w = np.exp(-od[i, cols])
        V[i, cols] = w / np.sum(w)
    if k2 != 1:
        V = np.stack([V[order[i, :k2]].mean(axis=0) for i in range(n)])
    final = np.empty((num_query, n - num_query), dtype=np.float32)
    for q in range(num_query):
        m = np.zeros(n, dtype=np.float16)
        for k in np.flatnonzero(V[q]):
            rows = np.flatnonzero(V[:, k])
            m[rows] = m[rows] + np.minimum(V[q, k], V[rows, k])
        jac = 1 - m / (2.0 - m)
        final[q] = (jac * (1 - lam) + od[q] * lam)[num_query:]
    return final


def _clustered(n, dim=16, ids=None, seed=0, asym=False):
    rng = np.random.default_rng(seed)
    ids = ids or max(2, n // 5)
    labels = rng.integers(0, ids, n)
    x = rng.normal(size=(ids, dim))[labels] + 0.6 * rng.normal(size=(n, dim))
    D = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)).astype(np.float32)
    if asym:
        D = D + rng.random(D.shape).astype(np.float32)
    return D


def test_parity_with_reference_fixture():
    ref = np.load(FIXTURES / "rerank.npz")
    out = k_reciprocal_rerank(
        ref["full_dist"],
        int(ref["num_query"]),
        k1=int(ref["k1"]),
        k2=int(ref["k2"]),
        lambda_value=float(ref["lambda_value"]),
    )
    assert out.shape == ref["reranked"].shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref["reranked"], rtol=0, atol=2e-3)
    # the float16 steps are mirrored, so in practice the match is exact
    assert np.abs(out - ref["reranked"]).max() <= 1e-6


@pytest.mark.parametrize(
    ("k1", "k2", "lam", "asym"),
    [(20, 6, 0.3, False), (5, 1, 0.5, True), (3, 3, 0.0, True), (60, 10, 0.3, False), (3, 9, 0.3, True)],
)
def test_matches_dense_oracle(k1, k2, lam, asym):
    D = _clustered(90, seed=k1, asym=asym)
    out = k_reciprocal_rerank(D, 25, k1=k1, k2=k2, lambda_value=lam)
    np.testing.assert_allclose(out, _dense_oracle(D, 25, k1, k2, lam), rtol=0, atol=1e-6)


@pytest.mark.parametrize("block_rows", [1, 7, 64, 500])
@pytest.mark.parametrize("with_pairs", [True, False])
def test_blockwise_equals_dense(block_rows, with_pairs):
    D = _clustered(120, seed=3, asym=True)
    calls = []

    def rows(s, e):
        calls.append((s, e))
        return D[s:e].astype(np.float64)

    pairs = (lambda r, c: D[r, c]) if with_pairs else None
    out = k_reciprocal_rerank_blockwise(rows, 120, 30, pairs=pairs, block_rows=block_rows)
    np.testing.assert_array_equal(out, k_reciprocal_rerank(D, 30))
    first_pass = [(s, min(120, s + block_rows)) for s in range(0, 120, block_rows)]
    assert calls[: len(first_pass)] == first_pass
    if with_pairs:
        assert len(calls) == len(first_pass)


def test_lambda_one_is_normalised_original_distance():
    D = _clustered(50, seed=4, asym=True)
    out = k_reciprocal_rerank(D, 10, lambda_value=1.0)
    expected = (D / D.max(axis=0)).T[:10, 10:]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_lambda_zero_is_a_jaccard_distance():
    D = _clustered(60, seed=5)
    out = k_reciprocal_rerank(D, 12, lambda_value=0.0)
    assert np.all((out >= 0) & (out <= 1))
    # with small neighbourhoods, a gallery item sharing no expanded neighbour with a query is at
    # Jaccard distance exactly 1, and one sharing some is closer
    out = k_reciprocal_rerank(D, 12, k1=3, k2=1, lambda_value=0.0)
    assert (out == 1).any() and (out < 1).any()


def test_torch_input_and_small_sets():
    torch = pytest.importorskip("torch")
    D = _clustered(15, seed=6)
    np.testing.assert_array_equal(k_reciprocal_rerank(torch.from_numpy(D), 5), k_reciprocal_rerank(D, 5))
    assert k_reciprocal_rerank(D, 15).shape == (15, 0)
    assert k_reciprocal_rerank(D, 0).shape == (0, 15)
    np.testing.assert_allclose(k_reciprocal_rerank(D, 5, k1=20), _dense_oracle(D, 5), atol=1e-6)  # k1 >= N


def test_errors():
    D = _clustered(20, seed=7)
    with pytest.raises(QAConvError, match="square"):
        k_reciprocal_rerank(D[:, :10], 5)
    with pytest.raises(QAConvError, match="num_query"):
        k_reciprocal_rerank(D, 21)
    with pytest.raises(QAConvError, match="column 3 has maximum"):
        E = D.copy()
        E[:, 3] = -1.0
        k_reciprocal_rerank(E, 5)
    with pytest.raises(QAConvError, match="non-finite .* row 2"):
        E = D.copy()
        E[2, 4] = np.nan
        k_reciprocal_rerank(E, 5)
    with pytest.raises(QAConvError, match=r"rows\(0, 8\) returned shape"):
        k_reciprocal_rerank_blockwise(lambda s, e: D[s:e, :5], 20, 5, block_rows=8)
    with pytest.raises(QAConvError, match="k1 and k2"):
        k_reciprocal_rerank(D, 5, k1=0)
    with pytest.raises(QAConvError, match="lambda_value"):
        k_reciprocal_rerank(D, 5, lambda_value=1.5)
