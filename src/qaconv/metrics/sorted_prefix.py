"""Each distance row sorted only as far as the ranking metrics look: up to the row's last true match.

CMC, AP and INP only ever count entries that rank at or before a query's last true match. With a
trained model that is a few hundred of ~16,000 gallery entries, so sorting whole rows does far
more work than the counts need. :func:`sorted_prefixes` selects each row's entries <= its limit
(one comparison pass), sorts just those, and answers "how many entries of row r are < v (or
<= v)" by binary search in the sorted selection. A row whose selection is about the whole row
(a weak model, or random distances) is sorted whole, as before.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["SortedPrefixes", "bsearch", "sorted_prefixes"]


def bsearch(flat: np.ndarray, lo: np.ndarray, hi: np.ndarray, vals: np.ndarray, right: bool) -> np.ndarray:
    """Vectorised ``searchsorted`` of ``vals[t]`` in the sorted segment ``flat[lo[t]:hi[t]]``.

    Returns absolute positions in ``flat`` (subtract ``lo`` for counts).
    """
    lo = lo.astype(np.int64, copy=True)
    hi = hi.astype(np.int64, copy=True)
    if lo.size == 0:
        return lo
    steps = int(np.max(hi - lo, initial=0)).bit_length() + 1
    last = max(flat.size - 1, 0)
    for _ in range(steps):
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) >> 1
        v = flat[np.minimum(mid, last)]
        go_right = (v <= vals) if right else (v < vals)
        lo = np.where(active & go_right, mid + 1, lo)
        hi = np.where(active & ~go_right, mid, hi)
    return lo


class SortedPrefixes(NamedTuple):
    """Row r's distances <= its limit, sorted, at ``flat[start[r] : start[r] + count[r]]``; ``whole[r]``
    marks rows stored whole (all ``n`` entries sorted, the selection first)."""

    flat: np.ndarray
    start: np.ndarray
    count: np.ndarray
    whole: np.ndarray

    def count_below(self, rows: np.ndarray, values: np.ndarray, *, inclusive: bool) -> np.ndarray:
        """Entries of each row ``rows[t]`` with a distance < ``values[t]`` (<= when ``inclusive``); each
        value must be at most its row's limit."""
        lo = self.start[rows]
        return bsearch(self.flat, lo, lo + self.count[rows], values, right=inclusive) - lo

    def first_non_finite_row(self, D: np.ndarray) -> int | None:
        """The first row of ``D`` holding NaN or +-inf, or None.

        A whole row is sorted, so NaN and +inf sit at its end and -inf at its start. Elsewhere NaN
        and +inf show in the row maximum, and -inf, being <= any limit, heads the selection.
        """
        bad = np.zeros(self.start.size, dtype=bool)
        whole = np.flatnonzero(self.whole)
        ends = self.flat[self.start[whole]], self.flat[self.start[whole] + D.shape[1] - 1]
        bad[whole] = ~(np.isfinite(ends[0]) & np.isfinite(ends[1]))
        if not self.whole.all():
            with np.errstate(invalid="ignore"):
                bad |= ~self.whole & ~np.isfinite(D.max(axis=1))
            bad |= (self.count > 0) & np.isneginf(self.flat[self.start])
        rows = np.flatnonzero(bad)
        return int(rows[0]) if rows.size else None


def sorted_prefixes(D: np.ndarray, limit: np.ndarray) -> SortedPrefixes:
    """Sort each row of ``D`` [b, n] as far as its entries <= ``limit[r]`` go.

    A row gets the power of two that holds its selection, padded with +inf, and the rows of one
    width are sorted together as a 2-D block; a row whose width reaches ``n`` is sorted whole. So
    the sorted store holds less than twice the selected entries, never more than the block.
    """
    b, n = D.shape
    selected = np.less_equal(D, limit[:, None])
    count = np.count_nonzero(selected, axis=1)
    width = np.minimum(n, 1 << np.ceil(np.log2(np.maximum(count, 1))).astype(np.int64))
    whole = width == n
    order = np.argsort(width, kind="stable")  # rows of one width side by side, whole rows last
    start = np.empty(b, dtype=np.int64)
    start[order] = np.cumsum(width[order]) - width[order]
    flat = np.empty(int(width.sum()), dtype=D.dtype)
    if not whole.all():
        flat[: int(width[~whole].sum())] = np.inf
        selected[whole] = False
        index = np.flatnonzero(selected)  # row by row
        rows = index // n
        kept = np.where(whole, 0, count)
        flat[start[rows] + np.arange(index.size) - (np.cumsum(kept) - kept)[rows]] = np.take(D, index)
    if whole.any():
        whole_rows = order[whole[order]]
        np.take(D, whole_rows, axis=0, out=flat[start[whole_rows[0]] :].reshape(whole_rows.size, n), mode="clip")
    for w in np.unique(width):
        rows = order[width[order] == w]
        flat[start[rows[0]] : start[rows[0]] + rows.size * w].reshape(rows.size, w).sort(axis=1)
    return SortedPrefixes(flat, start, count, whole)
