"""Running top-k over score blocks: dense top-k with ties by the lower column, in any block order."""

import numpy as np
import pytest
import torch

from qaconv.errors import QAConvError
from qaconv.matching import running_topk, topk_columns


def dense_topk(scores, k):
    """Reference: k best other columns per row, ties by the lower column (stable sort)."""
    scores = np.array(scores, dtype=np.float64)
    np.fill_diagonal(scores, -np.inf)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_running_topk_equals_dense_topk_with_ties_in_any_block_order():
    rng = np.random.default_rng(0)
    scores = rng.integers(-3, 4, size=(23, 23)).astype(np.float32)  # many ties
    scores[0, 5] = -0.0  # signed zeros tie too
    blocks = [(p, g, torch.from_numpy(scores[p : p + 5, g : g + 7])) for p in range(0, 23, 5) for g in range(0, 23, 7)]
    for order in (blocks, blocks[::-1], [blocks[i] for i in rng.permutation(len(blocks))]):
        cols, values = running_topk(iter(order), 23, 6)
        np.testing.assert_array_equal(cols.numpy(), dense_topk(scores, 6))
        np.testing.assert_array_equal(values.numpy(), np.take_along_axis(scores, cols.numpy(), 1) + 0.0)


def test_running_topk_row_offset_excludes_the_right_column_and_keeps_self_when_asked():
    scores = np.arange(40, dtype=np.float32).reshape(4, 10)  # rows are classes 3..6 of 10
    cols, _ = running_topk([(0, 0, torch.from_numpy(scores))], 4, 9, row_offset=3)
    for r in range(4):
        assert 3 + r not in cols[r].tolist()
        assert cols[r].tolist() == [c for c in range(9, -1, -1) if c != 3 + r]
    cols, _ = running_topk([(0, 0, torch.from_numpy(scores))], 4, 2, exclude_self=False)
    assert cols.tolist() == [[9, 8]] * 4


def test_running_topk_errors():
    with pytest.raises(QAConvError, match="NaN"):
        running_topk([(0, 0, torch.tensor([[0.0, float("nan"), 1.0]]))], 1, 1)
    with pytest.raises(QAConvError, match="fewer than k=2"):
        running_topk([(0, 0, torch.zeros(2, 2))], 2, 2)
    with pytest.raises(QAConvError, match="no score blocks"):
        running_topk([], 2, 1)
    with pytest.raises(QAConvError, match="k must be at least 1"):
        running_topk([(0, 0, torch.zeros(2, 2))], 2, 0)


def test_topk_columns_of_one_matrix_keep_every_column():
    scores = torch.tensor([[1.0, 3.0, 3.0, -0.0], [0.0, -1.0, 2.0, 0.0]])
    cols, values = topk_columns(scores, 3)
    assert cols.tolist() == [[1, 2, 0], [2, 0, 3]]  # ties by the lower column; -0.0 ties with 0.0
    assert values.tolist() == [[3.0, 3.0, 1.0], [2.0, 0.0, 0.0]]
