"""Ranked-list report: which queries are shown."""

import numpy as np

from qaconv.viz import select_queries


def test_select_queries_best_and_worst_by_ap():
    ap = np.array([0.5, np.nan, 1.0, 0.2, 0.5, 0.9])
    assert select_queries(ap, 2) == ([2, 5], [3, 0])
    assert select_queries(ap, 4) == ([2, 5, 0, 4], [3])  # never in both lists; NaN never shown
