"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), sparse and memory-bounded.

The arithmetic is that of the reference code used by the QAConv evaluator:

1. ``od = (D / D.max(axis=0)).T`` on the full (Q+G) x (Q+G) distance matrix, in
   float32 (so ``od[i, j] = D[j, i] / max(D[:, i])``); every column maximum must be > 0.
2. ``R[i]``: the k1+1 nearest neighbours of i under ``od[i]`` (i itself first). The k-reciprocal set of
   i is ``{j in R[i] : i in R[j]}`` (in the order of ``R[i]``); with ``round(k1/2)``
   the same gives the "half" sets.
3. Expansion: for each j in the k-reciprocal set of i whose half set H(j) has
   ``|H(j) & recip(i)| > 2/3 |H(j)|``, add H(j). ``V[i, e] = exp(-od[i, e])``
   normalised over the expanded set e (rounded to float16, as in the reference).
4. Query expansion (k2 > 1): ``V[i] = mean(V[R[i, :k2]])`` over i's k2 nearest (float16 again).
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

:mod:`qaconv.metrics.rerank_float16` holds steps 3-5's float16 arithmetic.

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

from ..errors import QAConvError
from .inputs import to_numpy
from .rerank_float16 import ACC_ELEMENTS, jaccard_output, query_expansion, sparse_v

__all__ = ["k_reciprocal_rerank", "k_reciprocal_rerank_blockwise"]

RowsFn = Callable[[int, int], Any]
PairsFn = Callable[[np.ndarray, np.ndarray], Any]

_NO_KEY = np.uint64(0xFFFFFFFFFFFFFFFF)  # empty slot of a neighbour list (sorts after every real key)


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
    _check_arguments(N, Q, k1, k2, lambda_value)
    block_rows = max(1, int(block_rows) if block_rows else ACC_ELEMENTS // N)
    kk = min(int(k1) + 1, N)  # the k-reciprocal lists: i and its k1 nearest
    kh = min(int(np.around(k1 / 2.0)) + 1, kk)  # the half lists of the expansion
    k2 = min(int(k2), N)  # query expansion: i and its k2 - 1 nearest
    colmax, out, candidates = _first_pass(rows, N, Q, min(2 * max(kk, k2), N), block_rows)
    _check_column_maxima(colmax)
    R, od_R = _nearest(candidates, colmax, max(kk, k2))
    Ei, Ej = _expanded_sets(R[:, :kk], kh)
    od_E = _expanded_distances(Ei, Ej, R, od_R, colmax, rows, pairs, block_rows)
    V = query_expansion(sparse_v(Ei, Ej, od_E, N), R, k2)
    return jaccard_output(V, out, colmax, lambda_value)


def _check_arguments(N: int, Q: int, k1: int, k2: int, lambda_value: float) -> None:
    if N < 1 or not 0 <= Q <= N:
        raise QAConvError(f"need 0 <= num_query <= num_total and num_total >= 1, got {Q} and {N}")
    if int(k1) < 1 or int(k2) < 1:
        raise QAConvError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise QAConvError(f"lambda_value must be in [0, 1], got {lambda_value}")


def _first_pass(rows: RowsFn, N: int, Q: int, keep: int, block_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass over the row blocks: the column maxima, the [Q, G] block D[g, q] (the output's buffer),
    and each column's ``keep`` nearest rows as keys (D[j, i], j).

    ``keep`` is twice the neighbours needed: it leaves room for entries that the normalisation
    D / colmax rounds into ties, so that the final lists are exactly the nearest by (od value, index).
    """
    colmax = np.full(N, -np.inf, dtype=np.float32)
    out = np.empty((Q, N - Q), dtype=np.float32)  # holds D[g, q] now, the output at the end
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
        _merge_candidates(best, thr, blk_t, s, keep)
    return colmax, out, best


def _merge_candidates(best: np.ndarray, thr: np.ndarray, blk_t: np.ndarray, s: int, keep: int) -> None:
    """Merge block rows s.. (``blk_t[i]`` holds D[s:, i]) into each column's ``keep`` nearest, in place."""
    N = best.shape[0]
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
        return
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


def _check_column_maxima(colmax: np.ndarray) -> None:
    if not (colmax > 0).all():
        bad = int(np.flatnonzero(~(colmax > 0))[0])
        raise QAConvError(
            f"re-ranking divides each column of the distance matrix by its maximum, and column {bad} has "
            f"maximum {float(colmax[bad]):g} <= 0; use distances with a positive maximum in every column "
            "(e.g. -score with some negative scores per column, or 1 - sigmoid(score / 10))"
        )


def _nearest(candidates: np.ndarray, colmax: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The candidates re-ranked by (od value, index): each item's k nearest [N, k] (itself first) and
    their od values (float32)."""
    best = _value_keys(_key_values(candidates) / colmax[:, None], _key_index(candidates))
    best.sort(axis=1)
    best = best[:, :k]
    return _key_index(best), _key_values(best)


def _expanded_sets(R: np.ndarray, kh: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of every j in i's expanded k-reciprocal set, sorted by (i, j).

    The k-reciprocal set of i is {j in R[i] : i in R[j]}; each of its members j whose half set H(j)
    has |H(j) & recip(i)| > 2/3 |H(j)| adds H(j).
    """
    N, kk = R.shape
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
    key = np.unique(np.concatenate(ent_i) * N + np.concatenate(ent_j))
    return key // N, key % N


def _expanded_distances(
    Ei: np.ndarray,
    Ej: np.ndarray,
    R: np.ndarray,
    od_R: np.ndarray,
    colmax: np.ndarray,
    rows: RowsFn,
    pairs: PairsFn | None,
    block_rows: int,
) -> np.ndarray:
    """od[i, j] for the expanded entries: from the neighbour lists where possible, else fetched."""
    N = R.shape[0]
    key = Ei * N + Ej
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
    return od_E


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
