"""Row counts without sorting: the counts equal those of the rows compared entry by entry, ties included."""

import numpy as np
import pytest

from qaconv.metrics.row_counts import bsearch, compiled, count_below, first_non_finite_row


def _oracle(D, values, starts, inclusive):
    rows = np.repeat(np.arange(D.shape[0]), np.diff(starts))
    return np.array([(D[r] <= v).sum() if inclusive else (D[r] < v).sum() for r, v in zip(rows, values, strict=True)])


def _values(D, rng, counts):
    """Ascending values per row: drawn from the row (ties with its entries) and from outside its range."""
    parts = []
    for r, m in enumerate(counts):
        pool = np.concatenate([D[r], [D[r].min() - 1, D[r].max() + 1]])
        parts.append(np.sort(rng.choice(pool, m)))
    return np.concatenate(parts).astype(D.dtype), np.append(0, np.cumsum(counts))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("kind", ["ties", "continuous", "one value"])
def test_counts_equal_comparisons(dtype, kind):
    rng = np.random.default_rng(0)
    if kind == "ties":
        D = rng.integers(0, 40, (30, 300)).astype(dtype)
    elif kind == "continuous":
        D = rng.standard_normal((30, 300)).astype(dtype) * 1e-3 + 5  # a narrow span far from zero
    else:
        D = np.full((30, 300), 0.25, dtype=dtype)
    counts = rng.integers(0, 40, 30)
    counts[:2] = [0, 1]  # a row without values, a row with one (zero span)
    values, starts = _values(D, rng, counts)
    lt, le = count_below(D, values, starts)
    np.testing.assert_array_equal(lt, _oracle(D, values, starts, inclusive=False))
    np.testing.assert_array_equal(le, _oracle(D, values, starts, inclusive=True))


def test_many_values_per_row_and_strided_input():
    """More values than entries (the bucket table is capped by the row length), on a non-contiguous view."""
    rng = np.random.default_rng(1)
    D = rng.random((40, 12))[::2].T  # 12 x 20, strided
    values, starts = _values(D, rng, np.full(12, 50))
    lt, le = count_below(D, values, starts)
    np.testing.assert_array_equal(lt, _oracle(D, values, starts, inclusive=False))
    np.testing.assert_array_equal(le, _oracle(D, values, starts, inclusive=True))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_non_finite_rows_are_found(bad, dtype):
    D = np.tile(np.arange(64, dtype=dtype), (4, 1))
    assert first_non_finite_row(D) is None
    D[2, 40] = bad
    D[3, 50] = bad
    assert first_non_finite_row(D) == 2


def test_bsearch_segments():
    flat = np.array([1, 2, 2, 3, 0, 5, 5, 9], dtype=float)
    lo, hi = np.array([0, 0, 4, 4, 4]), np.array([4, 4, 8, 8, 4])
    vals = np.array([2.0, 2.0, 5.0, 10.0, 1.0])
    np.testing.assert_array_equal(bsearch(flat, lo, hi, vals, right=False), [1, 1, 5, 8, 4])
    np.testing.assert_array_equal(bsearch(flat, lo, hi, vals, right=True), [3, 3, 7, 8, 4])


def test_a_kernel_without_a_writable_cache_still_compiles():
    """numba refuses to cache a function whose source has no cache location (here: code from exec, as for a
    read-only install without a home folder); the kernel is then compiled without a cache."""
    namespace: dict = {}
    exec("def twice(x):\n    return 2 * x\n", namespace)
    assert compiled(namespace["twice"])(21) == 42
