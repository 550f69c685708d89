"""How many entries of a distance row lie below each of a few values of that row, without sorting the row.

CMC, AP and INP need, for each true match of a query, the number of gallery entries with a smaller
(or equal) distance: about 20 counts per row of ~16,000 entries. Sorting every row costs ~11 ns per
entry (NumPy's sort, bound by this machine's sort speed); :func:`count_below` gets the same counts in
one pass over the row at ~3 ns per entry, whatever the distribution of the distances, with a compiled
(numba) bucket count:

* the row's m values ``u`` (sorted) span ``[u[0], u[-1]]``, cut into ``64 m`` equal buckets by a
  monotone map ``bucket(x) = 1 + int((x - u[0]) * scale)`` (bucket 0 below ``u[0]``, the last one
  above ``u[-1]``), so an entry in an earlier bucket than ``u[k]`` is certainly smaller than it and
  one in a later bucket certainly larger;
* an entry falling in a bucket that holds no value only increments that bucket's tally; one falling
  in a bucket that holds values (about 1 in 64) is compared with those values exactly;
* the count below ``u[k]`` is the tallies of the buckets before its own plus the exact comparisons.

Every comparison that decides a count is an exact floating-point comparison, so ties count as they
would after a sort: the results equal ``np.sum(row < v)`` and ``np.sum(row <= v)``.
:func:`bsearch` answers the same question for values already sorted in segments (the junk entries).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

__all__ = ["bsearch", "count_below", "counting_dtype", "first_non_finite_row"]

_BUCKETS_PER_VALUE = 64  # about 1 entry in 64 takes the exact path; the bucket tables stay in L1/L2


def compiled(fn: Callable) -> Callable:
    """``fn`` compiled by numba (without the GIL), its machine code cached on disk where a cache can be
    written: beside the module, else in the user's cache folder. numba refuses caching (at import) where
    neither is writable, e.g. a read-only install run by a user without a home; there it compiles per
    process (about a second)."""
    try:
        return njit(nogil=True, cache=True)(fn)
    except RuntimeError:
        return njit(nogil=True)(fn)


@compiled
def _count_rows(D, values, starts, lt, le, buckets_per_value):  # pragma: no cover - compiled
    b, n = D.shape
    for r in range(b):
        s, e = starts[r], starts[r + 1]
        m = e - s
        if m == 0:
            continue
        u = np.empty(m + 1, values.dtype)
        u[:m] = values[s:e]
        u[m] = np.inf  # sentinel: the exact scan below stops at m for every finite entry
        lo = u[0]
        nb = min(buckets_per_value * m, max(n, 64))
        span = u[m - 1] - lo
        scale = nb / span if span > 0 else 0.0
        if not scale < 1e300:  # a subnormal span: every entry takes the exact path
            scale = 0.0
        cap = nb + 2.0
        bucket_of = np.empty(m, np.int64)
        first = np.full(nb + 3, m, np.int64)  # first value in each bucket (m: the bucket holds none)
        for k in range(m - 1, -1, -1):
            t = int(min((u[k] - lo) * scale + 1.0, cap))
            bucket_of[k] = t
            first[t] = k
        tally = np.zeros(nb + 3, np.int64)
        below = np.zeros(m + 1, np.int64)  # exact path: entries between u[k-1] and u[k], and equal to u[k]
        equal = np.zeros(m + 1, np.int64)
        for j in range(n):
            d = D[r, j]
            x = (d - lo) * scale + 1.0
            x = x if x > 0.0 else 0.0
            x = x if x < cap else cap
            t = int(x)
            k = first[t]
            if k == m:
                tally[t] += 1
            else:
                while u[k] < d:
                    k += 1
                if u[k] == d:
                    equal[k] += 1
                else:
                    below[k] += 1
        tallied = 0  # entries of buckets without values before the current value's bucket
        t = 0
        exact = 0  # exact-path entries below the current value
        for k in range(m):
            while t < bucket_of[k]:
                tallied += tally[t]
                t += 1
            if k > 0 and u[k] == u[k - 1]:
                lt[s + k] = lt[s + k - 1]
                le[s + k] = le[s + k - 1]
            else:
                lt[s + k] = tallied + exact + below[k]
                le[s + k] = lt[s + k] + equal[k]
            exact += below[k] + equal[k]


@compiled
def _non_finite_per_row(D):  # pragma: no cover - compiled
    b, n = D.shape
    out = np.zeros(b, np.int64)
    for r in range(b):
        c = 0
        for j in range(n):
            d = D[r, j]
            c += d - d != 0  # NaN and +-inf (NaN != 0 is true); branch-free so the loop vectorises
        out[r] = c
    return out


def counting_dtype(D: np.ndarray) -> np.ndarray:
    """``D`` as the kernels take it: float32 and float64 as they are (no copy); float16 widened exactly to
    float32, other floats to float64. A caller using both functions below converts once with this."""
    if D.dtype in (np.float32, np.float64):
        return D
    return D.astype(np.float32 if D.dtype.itemsize < 4 else np.float64)


def count_below(D: np.ndarray, values: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row r of ``D`` [b, n] and each value ``v`` of ``values[starts[r]:starts[r + 1]]`` (ascending
    within the row): the number of entries of row r that are ``< v`` and ``<= v``.

    ``starts`` has b + 1 offsets. ``D`` must be finite (see :func:`first_non_finite_row`). Returns two
    int64 arrays shaped like ``values``.
    """
    D = counting_dtype(D)
    lt = np.zeros(values.size, dtype=np.int64)
    le = np.zeros(values.size, dtype=np.int64)
    if values.size:
        _count_rows(
            D, values.astype(D.dtype, copy=False), starts.astype(np.int64, copy=False), lt, le, _BUCKETS_PER_VALUE
        )
    return lt, le


def first_non_finite_row(D: np.ndarray) -> int | None:
    """The first row of ``D`` holding NaN or +-inf, or None."""
    rows = np.flatnonzero(_non_finite_per_row(counting_dtype(D)))
    return int(rows[0]) if rows.size else None


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
