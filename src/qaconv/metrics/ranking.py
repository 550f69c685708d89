"""CMC, mAP and mINP under the Market-1501 protocol, computed from query-row blocks.

Protocol (the open-reid "market1501" setting used by the QAConv evaluator):

* For each query, the gallery entries with the same pid AND the same camera are
  removed ("junk"). Nothing else is removed: distractors (pid 0) stay as negatives.
* A query with no remaining true match is skipped (it counts neither as a hit nor
  as a miss). If no query is valid, :class:`~qaconv.errors.QAConvError` is raised.
* CMC is first-match-break: ``cmc[k]`` is the fraction of valid queries whose first
  true match sits at rank ``<= k`` (0-based) among the remaining entries.
* AP is scikit-learn's ``average_precision_score(y_true, -dist)`` over the remaining
  entries, and mAP its mean over valid queries. scikit-learn puts **tied scores on
  one threshold**: every positive in a group of equal distances gets the precision
  measured at the end of the group. In closed form, for the positives ``p`` of a
  query with distances ``d_p``::

      AP = 1/npos * sum_p  #{positives with d <= d_p} / #{remaining entries with d <= d_p}

* INP (Ye et al., AGW) is ``npos / (rank of the last true match)`` (1-based, among
  the remaining entries), and mINP its mean over valid queries.
* CMC and INP need positions inside groups of tied distances; they break ties by
  gallery index (the order of ``np.argsort(..., kind="stable")``). The published
  code used the default quicksort, whose tie order is arbitrary, so with ties
  (e.g. fp16 scores) its CMC can differ from any deterministic rule by a few ranks.

Nothing here sorts the matrix or its rows: every count above is of a row's entries below one of
its true matches' distances, and :func:`qaconv.metrics.row_counts.count_below` counts them for all
of a row's true matches in one compiled pass over the row, so the cost does not depend on how far
down the row the true matches sit, nor on the machine's sort speed.
The true matches come from a pid index of the gallery, so no
Q x G boolean mask or index array is built either.
:class:`RankAccumulator` takes query rows in blocks, so an evaluator can feed rows as
they are scored and never hold the Q x G matrix; :func:`evaluate_rank` feeds a full
matrix through it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import QAConvError
from .inputs import flat_labels, to_numpy
from .row_counts import bsearch, count_below, counting_dtype, first_non_finite_row

__all__ = ["RankResult", "RankAccumulator", "evaluate_rank"]

_DEFAULT_CHUNK_ELEMENTS = 1 << 22  # rows x gallery entries scored at once (32 MiB in float64)


@dataclass(frozen=True)
class RankResult:
    """Ranking metrics of one evaluation.

    ``cmc`` is ``[max_rank]`` (``cmc[0]`` is Rank-1), ``mAP`` and ``mINP`` are in
    [0, 1], ``num_valid`` counts the queries with at least one true match left after
    the junk rule and ``num_query`` all queries seen. The per-query arrays hold
    ``ap`` and ``inp`` (NaN for skipped queries) and ``first_match``, the 0-based rank
    of the first true match among the remaining entries (-1 for skipped queries).
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid: int
    num_query: int
    ap: np.ndarray = field(repr=False)
    inp: np.ndarray = field(repr=False)
    first_match: np.ndarray = field(repr=False)

    def rank(self, k: int) -> float:
        """The CMC value at rank ``k`` (1-based): the fraction of valid queries matched in the top k."""
        if not 1 <= k <= len(self.cmc):
            raise QAConvError(f"rank-{k} is outside the computed CMC (max_rank={len(self.cmc)})")
        return float(self.cmc[k - 1])

    @property
    def rank1(self) -> float:
        return self.rank(1)

    @property
    def rank5(self) -> float:
        return self.rank(5)

    @property
    def rank10(self) -> float:
        return self.rank(10)

    @property
    def rank20(self) -> float:
        return self.rank(20)

    def to_dict(self) -> dict[str, float | int]:
        """Scalars for reports: rank1/5/10/20 (those within max_rank), mAP, mINP and the query counts."""
        out: dict[str, float | int] = {}
        for k in (1, 5, 10, 20):
            if k <= len(self.cmc):
                out[f"rank{k}"] = float(self.cmc[k - 1])
        out.update(mAP=float(self.mAP), mINP=float(self.mINP), num_valid=self.num_valid, num_query=self.num_query)
        return out


def _group_bounds(keys: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """For a list sorted by ``keys``, the first and last index of each element's group of equal keys."""
    n = keys[0].size
    idx = np.arange(n)
    change = np.zeros(max(n - 1, 0), dtype=bool)
    for k in keys:
        change |= k[1:] != k[:-1]
    is_last = np.append(change, True)
    is_first = np.insert(change, 0, True)
    end = np.minimum.accumulate(np.where(is_last, idx, n)[::-1])[::-1]
    start = np.maximum.accumulate(np.where(is_first, idx, -1))
    return start, end


class RankAccumulator:
    """Streaming CMC / mAP / mINP: feed query-row blocks with :meth:`update`, read :meth:`result`.

    Memory per thread: a few numbers per true match and per query (rows are neither copied
    nor sorted; only a float16 block is widened to float32, one chunk of ``chunk_elements``
    at a time). A block larger than one chunk is split and its chunks are scored on
    ``num_threads`` threads (the compiled counting releases the GIL); the result does not
    depend on the split or the threads.

    >>> acc = RankAccumulator(max_rank=20)
    >>> for start in range(0, num_query, 256):                       # doctest: +SKIP
    ...     acc.update(dist[start:start + 256], q_pids[start:start + 256],
    ...                q_camids[start:start + 256], g_pids, g_camids)
    >>> acc.result().mAP                                               # doctest: +SKIP
    """

    def __init__(
        self,
        max_rank: int = 100,
        *,
        name: str | None = None,
        chunk_elements: int = _DEFAULT_CHUNK_ELEMENTS,
        num_threads: int | None = None,
    ) -> None:
        if int(max_rank) < 1:
            raise QAConvError(f"max_rank must be >= 1, got {max_rank}")
        self.max_rank = int(max_rank)
        self.name = name
        self.chunk_elements = max(int(chunk_elements), 1)
        self.num_threads = max(1, int(num_threads) if num_threads else min(4, os.cpu_count() or 1))
        self._ap: list[np.ndarray] = []
        self._inp: list[np.ndarray] = []
        self._first: list[np.ndarray] = []
        self._num_gallery: int | None = None
        self._gallery_pids: np.ndarray | None = None
        self._gallery_index: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def num_query(self) -> int:
        return int(sum(a.size for a in self._ap))

    # -- gallery pid index --------------------------------------------------------------------------
    def _index_gallery(self, g_pids: np.ndarray) -> None:
        """Gallery columns grouped by pid (rebuilt only when the gallery pids change)."""
        if self._gallery_pids is not None and np.array_equal(self._gallery_pids, g_pids):
            return
        order = np.argsort(g_pids, kind="stable")
        uniq, start, count = np.unique(g_pids[order], return_index=True, return_counts=True)
        self._gallery_index = (order, uniq, start, count)
        self._gallery_pids = g_pids.copy()

    def _matches(self, q_pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) of every gallery entry with the query's pid, sorted by row then column."""
        assert self._gallery_index is not None
        order, uniq, start, count = self._gallery_index
        if uniq.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        g = np.clip(np.searchsorted(uniq, q_pids), 0, uniq.size - 1)
        found = uniq[g] == q_pids
        n = np.where(found, count[g], 0)
        rows = np.repeat(np.arange(q_pids.size), n)
        offsets = np.arange(rows.size) - np.repeat(np.cumsum(n) - n, n)
        cols = order[np.repeat(start[g], n) + offsets]
        return rows, cols

    # -- public -------------------------------------------------------------------------------------
    def update(self, dist_block: Any, q_pids: Any, q_camids: Any, g_pids: Any, g_camids: Any) -> None:
        """Add a block of query rows scored against the whole gallery (``dist_block`` is [b, G])."""
        D = to_numpy(dist_block)
        if D.ndim != 2:
            raise QAConvError(f"the distance matrix must be 2-D [queries, gallery], got shape {D.shape}")
        b, n = D.shape
        qp, qc, gp, gc = flat_labels(
            "the distance matrix",
            D.shape,
            {"q_pids": q_pids, "q_camids": q_camids},
            {"g_pids": g_pids, "g_camids": g_camids},
        )
        if self._num_gallery is None:
            self._num_gallery = n
        elif n != self._num_gallery:
            raise QAConvError(f"this block has {n} gallery columns but earlier blocks had {self._num_gallery}")
        if not np.issubdtype(D.dtype, np.floating):
            D = D.astype(np.float64)
        self._index_gallery(gp)
        rows_per_chunk = max(1, self.chunk_elements // max(n, 1))
        offset = self.num_query
        starts = range(0, b, rows_per_chunk)

        def score(s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            e = min(b, s + rows_per_chunk)
            return self._score_rows(D[s:e], qp[s:e], qc[s:e], gc, row_offset=offset + s)

        if self.num_threads > 1 and len(starts) > 1:
            with ThreadPoolExecutor(min(self.num_threads, len(starts))) as pool:
                parts = list(pool.map(score, starts))
        else:
            parts = [score(s) for s in starts]
        for ap, inp, first in parts:
            self._ap.append(ap)
            self._inp.append(inp)
            self._first.append(first)

    def result(self) -> RankResult:
        """The metrics over every query fed so far."""
        ap = np.concatenate(self._ap) if self._ap else np.zeros(0)
        inp = np.concatenate(self._inp) if self._inp else np.zeros(0)
        first = np.concatenate(self._first) if self._first else np.zeros(0, dtype=np.int64)
        valid = first >= 0
        num_valid = int(valid.sum())
        if num_valid == 0:
            where = f" in test set '{self.name}'" if self.name else ""
            raise QAConvError(
                f"no valid query{where}: none of the {first.size} queries has a gallery image of the same "
                "identity from another camera (check the query/gallery split and the pid/camera parsing)"
            )
        hist = np.bincount(first[valid & (first < self.max_rank)], minlength=self.max_rank)[: self.max_rank]
        cmc = np.cumsum(hist) / num_valid
        return RankResult(
            cmc=cmc,
            mAP=float(np.mean(ap[valid])),
            mINP=float(np.mean(inp[valid])),
            num_valid=num_valid,
            num_query=int(first.size),
            ap=ap,
            inp=inp,
            first_match=first,
        )

    # -- the vectorised core ------------------------------------------------------------------------
    def _score_rows(
        self, D: np.ndarray, qp: np.ndarray, qc: np.ndarray, gc: np.ndarray, row_offset: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """AP, INP and the first-match rank of each row (NaN, NaN, -1 for rows without a true match)."""
        b, n = D.shape
        ap = np.full(b, np.nan)
        inp = np.full(b, np.nan)
        first = np.full(b, -1, dtype=np.int64)
        if b == 0 or n == 0:
            return ap, inp, first
        rows, cols = self._matches(qp)
        vals = D[rows, cols]
        junk = gc[cols] == qc[rows]
        # junk entries (same pid, same camera), sorted by (row, value) for per-row counting
        jr, jv = rows[junk], vals[junk]
        o = np.lexsort((jv, jr))
        jr, jv = jr[o], jv[o]
        jcount = np.bincount(jr, minlength=b)
        jstart = np.cumsum(jcount) - jcount
        # positives, sorted by (row, value, column)
        keep = ~junk
        pr, pc, pv = rows[keep], cols[keep], vals[keep]
        o = np.lexsort((pc, pv, pr))
        pr, pc, pv = pr[o], pc[o], pv[o]
        npos = np.bincount(pr, minlength=b)
        pstart = np.cumsum(npos) - npos
        vr = np.flatnonzero(npos > 0)
        s0 = pstart[vr]  # each valid row's first and last positive
        e0 = s0 + npos[vr] - 1
        D = counting_dtype(D)  # a float16 chunk is widened once, not by each kernel call
        bad = first_non_finite_row(D)
        if bad is not None:
            raise QAConvError(
                f"the distance matrix has non-finite entries (NaN or inf), first in query row {row_offset + bad}"
            )
        lt_all, le_all = count_below(D, pv, np.append(pstart, pv.size))

        def junk_below(r: np.ndarray, v: np.ndarray, inclusive: bool) -> np.ndarray:
            """Junk entries of row r with distance <= v (inclusive) or < v."""
            return bsearch(jv, jstart[r], jstart[r] + jcount[r], v, right=inclusive) - jstart[r]

        le = le_all - junk_below(pr, pv, inclusive=True)  # remaining entries <= each positive
        gstart, gend = _group_bounds((pr, pv))
        tp_le = gend - pstart[pr] + 1
        ap_rows = np.bincount(pr, weights=tp_le / le, minlength=b)
        ap[vr] = ap_rows[vr] / npos[vr]

        # first true match (CMC) and last true match (INP), ties broken by gallery index
        lt_first = lt_all[s0] - junk_below(vr, pv[s0], inclusive=False)
        first[vr] = self._rank_of(D, vr, pv[s0], pc[s0], gend[s0] - s0 + 1, le[s0], lt_first, rows, cols, vals)
        lt_last = lt_all[e0] - junk_below(vr, pv[e0], inclusive=False)
        last_eq = e0 - gstart[e0] + 1
        last_rank = self._rank_of(D, vr, pv[e0], pc[e0], last_eq, le[e0], lt_last, rows, cols, vals, last=True)
        inp[vr] = npos[vr] / (last_rank + 1)
        return ap, inp, first

    @staticmethod
    def _rank_of(
        D: np.ndarray,
        r: np.ndarray,
        v: np.ndarray,
        c: np.ndarray,
        pos_eq: np.ndarray,
        le: np.ndarray,
        lt: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray,
        last: bool = False,
    ) -> np.ndarray:
        """0-based rank, among the remaining entries of row r, of the positive (value v, column c).

        ``c`` is the lowest column of the row's positives at value v (first match) or the
        highest (last match, ``last=True``), ``pos_eq`` the number of positives at value v.
        Negatives tied at v come before it when their column is lower.
        """
        tied_neg = le - lt - pos_eq
        base = lt + (pos_eq - 1 if last else 0)
        rank = base.astype(np.int64)
        t = np.flatnonzero(tied_neg > 0)
        if t.size:
            rt, vt, ct = r[t], v[t], c[t]
            n = D.shape[1]
            before = (D[rt] == vt[:, None]) & (np.arange(n)[None, :] < ct[:, None])
            count = before.sum(axis=1)
            # remove true matches and junk counted in `before` (only non-matching entries are negatives)
            where = np.full(D.shape[0], -1, dtype=np.int64)
            where[rt] = np.arange(t.size)
            slot = where[rows]
            hit = slot >= 0
            hit[hit] = (vals[hit] == vt[slot[hit]]) & (cols[hit] < ct[slot[hit]])
            count -= np.bincount(slot[hit], minlength=t.size)
            rank[t] += count
        return rank


def evaluate_rank(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 100,
    *,
    name: str | None = None,
    num_threads: int | None = None,
) -> RankResult:
    """CMC, mAP and mINP of a [Q, G] distance matrix under the Market-1501 protocol.

    Gallery entries with the query's pid and camera are removed per query; queries
    with no true match left are skipped; AP follows scikit-learn's tie rule (tied
    distances form one threshold); CMC/INP break ties by gallery index. ``name`` (the
    test set) goes into the error raised when no query is valid. ``distmat`` may be a
    NumPy array or a torch tensor. It is one :meth:`RankAccumulator.update` with the
    whole matrix (scored in chunks, on ``num_threads`` threads).
    """
    D = to_numpy(distmat)
    if D.ndim != 2:
        raise QAConvError(f"distmat must be 2-D [queries, gallery], got shape {D.shape}")
    acc = RankAccumulator(max_rank, name=name, num_threads=num_threads)
    # whole-matrix length checks first, so the message names the full shape
    qp, qc, gp, gc = flat_labels(
        "distmat", D.shape, {"q_pids": q_pids, "q_camids": q_camids}, {"g_pids": g_pids, "g_camids": g_camids}
    )
    acc.update(D, qp, qc, gp, gc)
    return acc.result()
