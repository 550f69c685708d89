"""Running top-k over score blocks that arrive one at a time: memory [rows, k], never rows x columns.

Scores are turned into int64 keys that order like (score descending, column ascending), so the
result is deterministic: ties go to the lower column, and -0.0 ties with 0.0. The Graph Sampler's
neighbour tables (`qaconv.engine.neighbors`) and gallery search (`qaconv.inference.search`) share it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from qaconv.errors import QAConvError

ScoreBlocks = Iterable[tuple[int, int, Tensor]]

_NONE = torch.iinfo(torch.int64).min  # key of an empty slot or an excluded pair
_LOW = 2**32  # keys hold the score's order-preserving bits above 32 bits of (reversed) column index


def _score_keys(scores: Tensor, col_start: int) -> Tensor:
    """int64 keys ordered like (score descending, column ascending): unique, so top-k has no ties."""
    bits = (scores.float() + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into 0.0, a fresh contiguous tensor
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).long()  # signed order == float order
    cols = torch.arange(col_start, col_start + scores.shape[1], device=scores.device)
    return ordered * _LOW + (_LOW - 1 - cols)


def _decode_keys(keys: Tensor) -> tuple[Tensor, Tensor]:
    cols = (_LOW - 1) - (keys & (_LOW - 1))
    ordered = (keys >> 32).int()
    bits = torch.where(ordered < 0, ordered ^ 0x7FFFFFFF, ordered)
    return cols, bits.view(torch.float32)


def running_topk(
    blocks: ScoreBlocks, num_rows: int, k: int, *, row_offset: int = 0, exclude_self: bool = True
) -> tuple[Tensor, Tensor]:
    """The k highest-scoring columns of every row from score blocks that arrive one at a time.

    `blocks` yields (row_start, col_start, scores[rows, cols]) in any order, covering rows
    0..num_rows-1 (higher score = more similar). With `exclude_self`, the pair of row r and column
    row_offset + r is skipped (row r is the class row_offset + r when the rows are one rank's share).
    Returns (columns, scores), both [num_rows, k] and sorted by score, ties by the lower column.
    Memory: the [num_rows, k] running keys plus one block.
    """
    if k < 1:
        raise QAConvError(f"k must be at least 1, got {k}")
    best: Tensor | None = None
    bad = None
    for row_start, col_start, scores in blocks:
        if best is None:
            best = torch.full((num_rows, k), _NONE, dtype=torch.int64, device=scores.device)
        keys = _score_keys(scores, col_start)
        nan = torch.isnan(scores).any()
        bad = nan if bad is None else bad | nan
        rows = torch.arange(row_start, row_start + len(scores), device=scores.device)
        if exclude_self:
            self_col = rows + row_offset - col_start
            hit = (self_col >= 0) & (self_col < scores.shape[1])
            keys[rows[hit] - row_start, self_col[hit]] = _NONE
        merged = torch.cat([best[row_start : row_start + len(scores)], keys], dim=1)
        best[row_start : row_start + len(scores)] = merged.topk(k, dim=1).values
    if best is None:
        raise QAConvError("running_topk got no score blocks")
    if bool(bad):
        raise QAConvError("scores contain NaN (diverged model or matcher?)")
    if bool((best == _NONE).any()):
        raise QAConvError(f"some rows have fewer than k={k} candidate columns")
    return _decode_keys(best)


def topk_columns(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(columns, scores) [rows, k] of one score matrix, best first, ties by the lower column."""
    return running_topk([(0, 0, scores)], len(scores), k, exclude_self=False)
