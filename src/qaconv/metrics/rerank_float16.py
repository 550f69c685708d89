"""The float16 arithmetic of k-reciprocal re-ranking, step by step as the reference code rounds it.

The reference builds a dense float16 V and sums the Jaccard overlap in float16; here V is sparse and
every rounding is mirrored (the float32 pairwise ``np.sum`` that normalises V, the float32 rank-order
mean of the query expansion, the float16 running sum of ``m`` and the float16 Jaccard formula), so the
output equals the reference bit for bit. :mod:`qaconv.metrics.rerank` describes the algorithm.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

ACC_ELEMENTS = 1 << 22  # entries of the [rows, G] Jaccard accumulator held at once
_TRIPLE_BUDGET = 1 << 20  # (query, shared column, gallery) triples of the Jaccard step held at once


def _f16(x: np.ndarray) -> np.ndarray:
    """Round float32 values to float16 precision (kept as float32)."""
    return x.astype(np.float16).astype(np.float32)


def _pairwise_sum(W: np.ndarray) -> np.ndarray:
    """Row sums of a float32 [r, n] array in the exact order of NumPy's pairwise ``np.sum``."""
    r, n = W.shape
    if n < 8:
        res = np.zeros(r, dtype=np.float32)
        for k in range(n):
            res = res + W[:, k]
        return res
    if n <= 128:
        acc = W[:, :8].copy()
        stop = n - n % 8
        for i in range(8, stop, 8):
            acc += W[:, i : i + 8]
        res = ((acc[:, 0] + acc[:, 1]) + (acc[:, 2] + acc[:, 3])) + ((acc[:, 4] + acc[:, 5]) + (acc[:, 6] + acc[:, 7]))
        for i in range(stop, n):
            res = res + W[:, i]
        return res
    half = n // 2
    half -= half % 8
    return _pairwise_sum(W[:, :half]) + _pairwise_sum(W[:, half:])


def _row_sums_float32(values: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Per-row float32 sums of ``values`` (grouped by the sorted ``rows``), summed as ``np.sum`` would."""
    count = np.bincount(rows, minlength=n_rows)
    start = np.cumsum(count) - count
    out = np.zeros(n_rows, dtype=np.float32)
    for size in np.unique(count[count > 0]):
        which = np.flatnonzero(count == size)
        out[which] = _pairwise_sum(values[start[which][:, None] + np.arange(size)[None, :]])
    return out


def _select_rows(V: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """The matrix whose row i is V[rows[i]]."""
    n = rows.size
    sel = sp.csr_matrix((np.ones(n, dtype=V.dtype), (np.arange(n), rows)), shape=(n, V.shape[0]))
    return sel @ V


def sparse_v(Ei: np.ndarray, Ej: np.ndarray, od_E: np.ndarray, n: int) -> sp.csr_matrix:
    """V[i, e] = exp(-od[i, e]) normalised over i's expanded set, rounded to float16 (kept as float32)."""
    w = np.exp(-od_E)
    v = (w / _row_sums_float32(w, Ei, n)[Ei]).astype(np.float16).astype(np.float32)
    return sp.csr_matrix((v, (Ei, Ej)), shape=(n, n))


def query_expansion(V: sp.csr_matrix, R: np.ndarray, k2: int) -> sp.csr_matrix:
    """V[i] = mean of V over i's k2 nearest (R[i, :k2], i first), summed in float32 in rank order as
    ``np.mean`` does, rounded to float16."""
    if k2 == 1:
        return V
    acc = _select_rows(V, R[:, 0])
    for a in range(1, k2):
        acc = acc + _select_rows(V, R[:, a])
    V = acc.tocsr()
    V.data = (V.data / np.float32(k2)).astype(np.float16).astype(np.float32)
    V.eliminate_zeros()
    return V


def jaccard_output(V: sp.csr_matrix, out: np.ndarray, colmax: np.ndarray, lambda_value: float) -> np.ndarray:
    """``jaccard * (1 - lambda) + od * lambda`` for queries x gallery, in place in ``out``, which holds
    D[g, q] (so ``od[q, g] = out[q, g] / colmax[q]``). Rows are done as the triples budget allows."""
    Q, G = out.shape
    if Q == 0 or G == 0:
        return out
    Vq = V[:Q].tocsr()
    Vq.sort_indices()
    Vg = V[Q:].tocsc()
    ent_row = np.repeat(np.arange(Q), np.diff(Vq.indptr))
    ent_cnt = np.diff(Vg.indptr)[Vq.indices]  # gallery rows sharing each query entry's column
    ent_cum = np.concatenate([[0], np.cumsum(ent_cnt)])
    row_cum = ent_cum[Vq.indptr]  # triples before each query row
    rows_max = max(1, ACC_ELEMENTS // G)
    w_jac = np.float32(np.float16(1 - float(lambda_value)))
    s = 0
    while s < Q:
        # as many query rows as keep the triples and the [rows, G] accumulator in budget (>= 1)
        e = int(np.searchsorted(row_cum, row_cum[s] + _TRIPLE_BUDGET, side="right")) - 1
        e = min(max(e, s + 1), s + rows_max, Q)
        m = _overlap(Vq, Vg, ent_row, ent_cnt, ent_cum, s, e)
        _blend(out[s:e], m, colmax[s:e], float(lambda_value), w_jac)
        s = e
    return out


def _overlap(
    Vq: sp.csr_matrix,
    Vg: sp.csc_matrix,
    ent_row: np.ndarray,
    ent_cnt: np.ndarray,
    ent_cum: np.ndarray,
    s: int,
    e: int,
) -> np.ndarray:
    """m[q, g] = sum_k min(V[q, k], V[g, k]) for query rows s..e-1, flat [(e - s) * G], as the reference's
    float16 running sum over ascending k.

    Step t adds every query row's t-th nonzero column at once (no index repeats within a step, so the
    scatter is exact). float16 addition is a float32 addition rounded to float16, which is what NumPy's
    float16 loops do.
    """
    G = Vg.shape[0]
    a, b = Vq.indptr[s], Vq.indptr[e]
    cnt = ent_cnt[a:b]
    # triples (query row, shared column k, gallery row) for every nonzero V[q, k] and V[g, k]
    ent = np.repeat(np.arange(a, b), cnt)
    offs = np.arange(ent.size) - np.repeat(ent_cum[a:b] - ent_cum[a], cnt) + Vg.indptr[Vq.indices[ent]]
    idx = (ent_row[ent] - s) * G + Vg.indices[offs]
    contrib = np.minimum(Vq.data[ent], Vg.data[offs])
    step = ent - Vq.indptr[ent_row[ent]]  # position of each entry within its query row
    step = step.astype(np.uint16) if step.size == 0 or step.max() < 1 << 16 else step  # radix sort for uint16
    order = np.argsort(step, kind="stable")
    bounds = np.searchsorted(step[order], np.arange(int(step.max(initial=0)) + 2))
    acc = np.zeros((e - s) * G, dtype=np.float32)
    for t in range(bounds.size - 1):
        sel = order[bounds[t] : bounds[t + 1]]
        i = idx[sel]
        acc[i] = _f16(acc[i] + contrib[sel])
    return acc


def _blend(block: np.ndarray, m: np.ndarray, colmax: np.ndarray, lam: float, w_jac: np.float32) -> None:
    """block (D[g, q] for these queries) becomes jaccard * (1 - lambda) + od * lambda, with
    jaccard = 1 - m / (2 - m), each step rounded to float16 as the reference; where m = 0 (most pairs)
    that is just float16(1 - lambda) + od * lambda."""
    block /= colmax[:, None]
    block *= np.float32(lam)
    nz = np.flatnonzero(m)
    mz = m[nz]
    jac = _f16(_f16(1 - _f16(mz / _f16(2 - mz))) * w_jac)
    flat_out = block.reshape(-1)
    od_nz = flat_out[nz]
    flat_out += w_jac
    flat_out[nz] = jac + od_nz
