"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), sparse and memory-bounded.

The arithmetic is that of the reference code used by the QAConv evaluator:

1. ``od = (D / D.max(axis=0)).T`` on the full (Q+G) x (Q+G) distance matrix, in
   float32 (so ``od[i, j] = D[j, i] / max(D[:, i])``); every column maximum must be > 0.
2. ``R[i]``: the k1+1 nearest neighbours of i under ``od[i]``. The k-reciprocal set of
   i is ``{j in R[i] : i in R[j]}`` (in the order of ``R[i]``); with ``round(k1/2)``
   the same gives the "half" sets.
3. Expansion: for each j in the k-reciprocal set of i whose half set H(j) has
   ``|H(j) & recip(i)| > 2/3 |H(j)|``, add H(j). ``V[i, e] = exp(-od[i, e])``
   normalised over the expanded set e (rounded to float16, as in the reference).
4. Query expansion (k2 > 1): ``V[i] = mean(V[R[i, :k2]])`` (float16 again).
5. ``jaccard[q, g] = 1 - m / (2 - m)`` with ``m = sum_k min(V[q, k], V[g, k])``,
   evaluated like the reference: ``m`` is a float16 running sum over ascending k and
   the Jaccard formula runs in float16. The output is
   ``jaccard * (1 - lambda) + od[q, g] * lambda`` for queries q and gallery items g.

Every float16 rounding of the reference is mirrored: the float32 pairwise ``np.sum`` that
normalises V, the float32 rank-order mean of step 4, the float16 running sum of ``m`` and
the float16 Jaccard arithmetic. The output therefore equals the reference bit for bit (a
float64 ``m`` alone would move it by up to ~2e-3). One difference remains by design:
neighbours are ranked by (od value, index), so ties are broken by index, where the
reference's quicksort breaks them arbitrarily.

Memory (N = Q+G): the input is read in row blocks (about 4M entries each). Beyond one
block the function holds 2(k1+1) neighbour candidates per item (64-bit keys), the sparse
V (a few dozen entries per row), the Q x G float32 output (which stores D[g, q] during
the first pass), a [rows, G] Jaccard accumulator of about 4M entries and at most 2^20
(query, column, gallery) triples. Nothing is N x N. :func:`k_reciprocal_rerank_blockwise`
takes the rows from a callable, so the caller never needs the full matrix either;
:func:`k_reciprocal_rerank` is the simple front door for a dense matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import QAConvError
from .inputs import to_numpy

__all__ = ["k_reciprocal_rerank", "k_reciprocal_rerank_blockwise"]

RowsFn = Callable[[int, int], Any]
PairsFn = Callable[[np.ndarray, np.ndarray], Any]

_NO_KEY = np.uint64(0xFFFFFFFFFFFFFFFF)  # empty slot of a neighbour list (sorts after every real key)
_ACC_ELEMENTS = 1 << 22  # entries of a distance block, and of the Jaccard accumulator, held at once
_TRIPLE_BUDGET = 1 << 20  # (query, shared column, gallery) triples of the Jaccard step held at once


# -- float32 <-> order-preserving 64-bit keys (value in the high half, index in the low half) ----------
def _value_keys(block: np.ndarray, index: np.ndarray) -> np.ndarray:
    """uint64 keys ordering entries by (float32 value, index); ``index`` broadcasts against ``block``."""
    u = (block + np.float32(0.0)).view(np.uint32)  # + 0.0 turns -0.0 into +0.0
    u = np.where(u >> 31, ~u, u | np.uint32(0x80000000))
    return (u.astype(np.uint64) << np.uint64(32)) | index.astype(np.uint64)


def _key_values(keys: np.ndarray) -> np.ndarray:
    u = (keys >> np.uint64(32)).astype(np.uint32)
    u = np.where(u >> 31, u & np.uint32(0x7FFFFFFF), ~u)
    return u.view(np.float32)


def _key_index(keys: np.ndarray) -> np.ndarray:
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)


def _reciprocal_mask(R: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """mask[i, a] = i is among the neighbours of R[i, a] (both lists are the rows of R)."""
    n, k = R.shape
    mask = np.empty((n, k), dtype=bool)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        back = R[R[s:e]]  # [c, k, k]
        mask[s:e] = (back == np.arange(s, e)[:, None, None]).any(axis=2)
    return mask


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


def _check_block(block: np.ndarray, start: int, stop: int, n: int) -> None:
    if block.shape != (stop - start, n):
        raise QAConvError(
            f"rows({start}, {stop}) returned shape {tuple(block.shape)}, expected "
            f"{(stop - start, n)} (rows {start}..{stop - 1} of the full (Q+G) x (Q+G) distances)"
        )
    if not np.isfinite(block).all():
        bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
        raise QAConvError(f"the distance matrix has non-finite entries (NaN or inf), first in row {bad}")


def k_reciprocal_rerank_blockwise(
    rows: RowsFn,
    num_total: int,
    num_query: int,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    pairs: PairsFn | None = None,
    block_rows: int | None = None,
) -> np.ndarray:
    """k-reciprocal re-ranking with the (Q+G) x (Q+G) distances supplied by row blocks.

    ``rows(start, stop)`` returns ``D[start:stop, :]`` (all ``num_total`` columns) of the
    distance matrix over query+gallery, queries first. The first pass calls it once per
    block of ``block_rows`` rows (default: about 4M entries per block), in order, for the
    column maxima, the nearest neighbours of every item and the gallery x query block
    that the output needs. The expansion step then needs ``D[j, i]`` for the few pairs
    that lie outside the neighbour lists (about 2 per item on clustered data), in one
    call to ``pairs(j_index, i_index)`` (for example a matcher scoring just those pairs;
    it must return what ``rows`` would). Without ``pairs`` a second pass over ``rows``
    gathers them. Returns the re-ranked [num_query, num_total - num_query] distances
    (float32).
    """
    N, Q = int(num_total), int(num_query)
    if N < 1 or not 0 <= Q <= N:
        raise QAConvError(f"need 0 <= num_query <= num_total and num_total >= 1, got {Q} and {N}")
    if int(k1) < 1 or int(k2) < 1:
        raise QAConvError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise QAConvError(f"lambda_value must be in [0, 1], got {lambda_value}")
    G = N - Q
    block_rows = max(1, int(block_rows) if block_rows else _ACC_ELEMENTS // N)
    kk = min(int(k1) + 1, N)
    kh = min(int(np.around(k1 / 2.0)) + 1, kk)
    k2 = int(k2)

    # ---- pass 1: column maxima, neighbour candidates (per column of D = per row of od), g x q block ----
    # A column keeps its `keep` nearest rows by (D value, index); `keep` = 2(k1+1) leaves room for
    # entries that the normalisation D / colmax rounds into ties, so that the final lists are
    # exactly the k1+1 nearest by (od value, index).
    keep = min(2 * kk, N)
    colmax = np.full(N, -np.inf, dtype=np.float32)
    out = np.empty((Q, G), dtype=np.float32)  # holds D[g, q] now, the output at the end
    best = np.full((N, keep), _NO_KEY, dtype=np.uint64)  # keys (D[j, i], j) of column i's nearest j
    thr = np.full(N, np.inf, dtype=np.float32)  # D value of column i's current keep-th nearest
    for s in range(0, N, block_rows):
        e = min(N, s + block_rows)
        blk = np.asarray(to_numpy(rows(s, e)), dtype=np.float32)
        _check_block(blk, s, e, N)
        blk_t = np.ascontiguousarray(blk.T)  # [N, b]: row i holds D[s:e, i]
        del blk
        np.maximum(colmax, blk_t.max(axis=1), out=colmax)
        if e > Q and Q > 0:
            g0 = max(s, Q)
            out[:, g0 - Q : e - Q] = blk_t[:Q, g0 - s :]
        # only entries below the running threshold can enter a list (rows come in increasing
        # index order, so an entry tied with the threshold loses the index tie-break)
        mask = blk_t < thr[:, None]
        if blk_t.shape[1] > keep and np.count_nonzero(mask) > 2 * keep * N:
            # crowded (the first blocks): also drop what is beyond this block's own keep-th
            # smallest of each column (ties with it stay, for the index tie-break)
            mask &= blk_t <= np.partition(blk_t, keep - 1, axis=1)[:, keep - 1 : keep]
        flat = np.flatnonzero(mask)  # sorted by column
        del mask
        c, r = np.divmod(flat, blk_t.shape[1])
        if c.size == 0:
            continue
        keys = _value_keys(blk_t[c, r], r + s)
        cnt = np.bincount(c, minlength=N)
        cols = np.flatnonzero(cnt)
        cnt = cnt[cols]
        start = np.cumsum(cnt) - cnt
        pad = np.full((cols.size, keep + int(cnt.max())), _NO_KEY, dtype=np.uint64)
        pad[:, :keep] = best[cols]
        pad[np.repeat(np.arange(cols.size), cnt), keep + np.arange(c.size) - np.repeat(start, cnt)] = keys
        pad = np.partition(pad, keep - 1, axis=1)[:, :keep]
        best[cols] = pad
        full = pad[:, keep - 1] != _NO_KEY
        thr[cols[full]] = _key_values(pad[full, keep - 1])
        del blk_t, c, r, keys, pad
    if not (colmax > 0).all():
        bad = int(np.flatnonzero(~(colmax > 0))[0])
        raise QAConvError(
            f"re-ranking divides each column of the distance matrix by its maximum, and column {bad} has "
            f"maximum {float(colmax[bad]):g} <= 0; use distances with a positive maximum in every column "
            "(e.g. -score with some negative scores per column, or 1 - sigmoid(score / 10))"
        )
    # re-rank the candidates by (od value, index) and keep the k1+1 nearest
    best = _value_keys(_key_values(best) / colmax[:, None], _key_index(best))
    best.sort(axis=1)
    best = best[:, :kk]
    R = _key_index(best)  # [N, kk] neighbours of each item, nearest first
    od_R = _key_values(best)  # od[i, R[i, a]] in float32
    del best

    # ---- k-reciprocal sets and their expansion ----
    M1 = _reciprocal_mask(R)
    Rh = np.ascontiguousarray(R[:, :kh])
    Mh = _reciprocal_mask(Rh)
    nh = Mh.sum(axis=1)
    ent_i: list[np.ndarray] = []
    ent_j: list[np.ndarray] = []
    chunk = max(1, min(N, (1 << 24) // N, (1 << 22) // (kk * kh)))
    member = np.zeros((chunk, N), dtype=bool)  # member[i - s, j]: j is k-reciprocal to i
    for s in range(0, N, chunk):
        e = min(N, s + chunk)
        r, m1 = R[s:e], M1[s:e]  # [c, kk]
        ch, mh = Rh[r], Mh[r]  # [c, kk, kh]: half sets of each neighbour
        local = np.broadcast_to(np.arange(e - s)[:, None], r.shape)
        member[local[m1], r[m1]] = True
        inside = member[np.broadcast_to(local[..., None], ch.shape), ch] & mh  # [c, kk, kh]
        member[local[m1], r[m1]] = False
        cond = m1 & (inside.sum(axis=2) > (2.0 / 3.0) * nh[r])  # [c, kk]
        ii = np.arange(s, e)
        add = cond[..., None] & mh  # [c, kk, kh]
        ent_i += [np.broadcast_to(ii[:, None], r.shape)[m1], np.broadcast_to(ii[:, None, None], ch.shape)[add]]
        ent_j += [r[m1], ch[add]]
    del member
    key = np.unique(np.concatenate(ent_i) * N + np.concatenate(ent_j))
    del ent_i, ent_j
    Ei, Ej = key // N, key % N

    # od[i, j] for the expanded entries: from the neighbour lists where possible, else fetched
    known = np.arange(N)[:, None] * N + R
    order = np.argsort(known, axis=None)
    known_sorted = known.reshape(-1)[order]
    pos = np.clip(np.searchsorted(known_sorted, key), 0, known_sorted.size - 1)
    found = known_sorted[pos] == key
    od_E = np.empty(key.size, dtype=np.float32)
    od_E[found] = od_R.reshape(-1)[order[pos[found]]]
    miss = np.flatnonzero(~found)
    if miss.size:
        mi, mj = Ei[miss], Ej[miss]
        od_E[miss] = _fetch(rows, pairs, mj, mi, N, block_rows) / colmax[mi]
    del known, order, known_sorted, pos, found

    # ---- V (sparse), query expansion ----
    w = np.exp(-od_E)
    v = (w / _row_sums_float32(w, Ei, N)[Ei]).astype(np.float16).astype(np.float32)
    V = sp.csr_matrix((v, (Ei, Ej)), shape=(N, N))
    if k2 != 1:
        # mean of the rows of the k2 nearest, summed in float32 in rank order as np.mean does
        k2e = min(k2, N)
        acc = _select_rows(V, R[:, 0])
        for a in range(1, k2e):
            acc = acc + _select_rows(V, R[:, a])
        V = acc.tocsr()
        V.data = (V.data / np.float32(k2e)).astype(np.float16).astype(np.float32)
        V.eliminate_zeros()

    # ---- Jaccard (queries x gallery) and the output ----
    if Q == 0 or G == 0:
        return out
    Vq = V[:Q].tocsr()
    Vq.sort_indices()
    Vg = V[Q:].tocsc()
    q_val, g_val = Vq.data, Vg.data  # float32 holding float16 values
    g_ptr, g_idx = Vg.indptr, Vg.indices
    ent_row = np.repeat(np.arange(Q), np.diff(Vq.indptr))
    ent_step = np.arange(Vq.nnz) - Vq.indptr[ent_row]  # position of each entry within its row
    step_type = np.uint16 if Vq.nnz == 0 or ent_step.max() < 1 << 16 else np.int64  # radix sort for uint16
    ent_cnt = np.diff(g_ptr)[Vq.indices]  # gallery rows sharing each query entry's column
    ent_cum = np.concatenate([[0], np.cumsum(ent_cnt)])
    row_cum = ent_cum[Vq.indptr]  # triples before each query row
    rows_max = max(1, _ACC_ELEMENTS // G)
    lam = float(lambda_value)
    w_jac = np.float32(np.float16(1 - lam))
    s = 0
    while s < Q:
        # as many query rows as keep the triples and the [rows, G] accumulator in budget (>= 1)
        e = int(np.searchsorted(row_cum, row_cum[s] + _TRIPLE_BUDGET, side="right")) - 1
        e = min(max(e, s + 1), s + rows_max, Q)
        a, b = Vq.indptr[s], Vq.indptr[e]
        cnt = ent_cnt[a:b]
        # triples (query row, shared column k, gallery row) for every nonzero V[q, k] and V[g, k]
        ent = np.repeat(np.arange(a, b), cnt)
        offs = np.arange(ent.size) - np.repeat(ent_cum[a:b] - ent_cum[a], cnt) + g_ptr[Vq.indices[ent]]
        idx = (ent_row[ent] - s) * G + g_idx[offs]
        contrib = np.minimum(q_val[ent], g_val[offs])
        # m[q, g] = sum_k min(V[q, k], V[g, k]) as the reference's float16 running sum over
        # ascending k: step t adds every query row's t-th nonzero column at once (no index
        # repeats within a step, so the scatter is exact). float16 addition is a float32 addition
        # rounded to float16, which is what NumPy's float16 loops do.
        step = ent_step[ent].astype(step_type)
        order = np.argsort(step, kind="stable")
        bounds = np.searchsorted(step[order], np.arange(int(step.max(initial=0)) + 2))
        acc = np.zeros((e - s) * G, dtype=np.float32)
        for t in range(bounds.size - 1):
            sel = order[bounds[t] : bounds[t + 1]]
            i = idx[sel]
            acc[i] = _f16(acc[i] + contrib[sel])
        # jaccard = 1 - m / (2 - m), then jaccard * (1 - lambda), each step rounded to float16 as
        # above; where m = 0 (most pairs) this is just float16(1 - lambda)
        block = out[s:e]
        block /= colmax[s:e, None]
        block *= np.float32(lam)
        nz = np.flatnonzero(acc)
        m = acc[nz]
        jac = _f16(_f16(1 - _f16(m / _f16(2 - m))) * w_jac)
        flat_out = block.reshape(-1)
        od_nz = flat_out[nz]
        flat_out += w_jac
        flat_out[nz] = jac + od_nz
        s = e
    return out


def _fetch(rows: RowsFn, pairs: PairsFn | None, r: np.ndarray, c: np.ndarray, n: int, block_rows: int) -> np.ndarray:
    """D[r, c] (float32) for index arrays, from ``pairs`` or a second pass over ``rows``."""
    if pairs is not None:
        vals = np.asarray(to_numpy(pairs(r, c)), dtype=np.float32).reshape(-1)
        if vals.size != r.size:
            raise QAConvError(f"pairs() returned {vals.size} values for {r.size} index pairs")
        if not np.isfinite(vals).all():
            raise QAConvError("pairs() returned non-finite distances (NaN or inf)")
        return vals
    vals = np.empty(r.size, dtype=np.float32)
    order = np.argsort(r, kind="stable")
    rs = r[order]
    for s in range(0, n, block_rows):
        e = min(n, s + block_rows)
        lo, hi = np.searchsorted(rs, [s, e])
        if lo == hi:
            continue
        blk = np.asarray(to_numpy(rows(s, e)), dtype=np.float32)
        _check_block(blk, s, e, n)
        sel = order[lo:hi]
        vals[sel] = blk[r[sel] - s, c[sel]]
    return vals


def k_reciprocal_rerank(
    full_dist: Any, num_query: int, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> np.ndarray:
    """Re-ranked [num_query, num_gallery] distances from the full (Q+G) x (Q+G) matrix (queries first).

    A dense front door to :func:`k_reciprocal_rerank_blockwise`; see the module
    docstring for the arithmetic and what is held in memory.
    """
    D = to_numpy(full_dist)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise QAConvError(f"full_dist must be a square (Q+G) x (Q+G) matrix, got shape {tuple(D.shape)}")
    n = D.shape[0]
    if not 0 <= int(num_query) <= n:
        raise QAConvError(f"num_query={num_query} does not fit a {n} x {n} distance matrix")
    return k_reciprocal_rerank_blockwise(
        lambda s, e: D[s:e], n, int(num_query), k1, k2, lambda_value, pairs=lambda r, c: D[r, c]
    )
