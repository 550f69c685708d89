"""Sorted row prefixes: the counts equal those of fully sorted rows, for padded and whole rows alike."""

import numpy as np
import pytest

from qaconv.metrics.sorted_prefix import bsearch, sorted_prefixes


def _oracle(D, rows, values, inclusive):
    return np.array([(D[r] <= v).sum() if inclusive else (D[r] < v).sum() for r, v in zip(rows, values, strict=True)])


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_counts_equal_full_sort(dtype):
    rng = np.random.default_rng(0)
    D = rng.integers(0, 40, (30, 50)).astype(dtype)  # many ties
    # limits from nothing selected to everything selected: padded widths 1..32 and whole rows
    limit = np.sort(D, axis=1)[np.arange(30), rng.integers(0, 50, 30)]
    limit[:3] = [-np.inf, D[3].max(), D[4].min()]
    p = sorted_prefixes(D, limit)
    assert p.whole.any() and not p.whole.all()
    np.testing.assert_array_equal(p.count, np.less_equal(D, limit[:, None]).sum(axis=1))
    for r in range(30):
        np.testing.assert_array_equal(p.flat[p.start[r] : p.start[r] + p.count[r]], np.sort(D[r][D[r] <= limit[r]]))
    rows = rng.integers(0, 30, 400)
    values = np.minimum(rng.integers(-1, 41, 400), limit[rows]).astype(dtype)
    for inclusive in (False, True):
        got = p.count_below(rows, values, inclusive=inclusive)
        np.testing.assert_array_equal(got, _oracle(D, rows, values, inclusive))
    assert p.flat.size <= 2 * p.count.sum() + 30 * 50


def test_store_stays_small_when_prefixes_are_short():
    rng = np.random.default_rng(1)
    D = rng.random((20, 1000))
    limit = np.sort(D, axis=1)[:, 9]  # 10 entries per row
    p = sorted_prefixes(D, limit)
    assert not p.whole.any() and p.flat.size == 20 * 16


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["padded", "whole"])
def test_non_finite_rows_are_found(bad, where):
    D = np.tile(np.arange(64, dtype=np.float64), (4, 1))
    limit = np.full(4, 3.0 if where == "padded" else 63.0)
    D[2, 40] = bad  # past the padded rows' limit, so only the maximum (or the head for -inf) shows it
    D[3, 50] = bad
    p = sorted_prefixes(D, limit)
    assert p.whole.all() == (where == "whole")
    assert p.first_non_finite_row(D) == 2
    assert sorted_prefixes(np.arange(64.0)[None], np.array([3.0])).first_non_finite_row(np.arange(64.0)[None]) is None


def test_bsearch_segments():
    flat = np.array([1, 2, 2, 3, 0, 5, 5, 9], dtype=float)
    lo, hi = np.array([0, 0, 4, 4, 4]), np.array([4, 4, 8, 8, 4])
    vals = np.array([2.0, 2.0, 5.0, 10.0, 1.0])
    np.testing.assert_array_equal(bsearch(flat, lo, hi, vals, right=False), [1, 1, 5, 8, 4])
    np.testing.assert_array_equal(bsearch(flat, lo, hi, vals, right=True), [3, 3, 7, 8, 4])
