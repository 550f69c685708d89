"""Raw QAConv scores streamed into the ranking metrics one query-row block at a time, and top-N lists.

`stream_raw` scores query-row blocks against the whole gallery (`score_blocks`, dist = -score) and
hands each finished [rows, G] block to the metrics' streaming accumulator on a worker thread while the
next block is scored, so the peak memory is the feature maps plus two row blocks, never Q x G.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from qaconv.config.tree import EvaluationConfig
from qaconv.errors import QAConvError
from qaconv.matching import QAConv, score_blocks
from qaconv.metrics import RankAccumulator, RankResult, evaluate_rank

from .side import Side

MAX_RANK = 100


def rank_dense(dist: np.ndarray, query: Side, gallery: Side, name: str | None) -> RankResult:
    """The ranking metrics of a dense [Q, G] distance matrix."""
    return evaluate_rank(dist, query.pids, gallery.pids, query.cams, gallery.cams, MAX_RANK, name=name)


def top_n(dist: np.ndarray, query: Side, gallery: Side, n: int) -> np.ndarray:
    """The n nearest gallery indices per row of `dist` (the rows of `query`), nearest first, without
    same-id-same-camera entries.

    Ties at the cut are broken arbitrarily (argpartition), inside the list by index; -1 pads rows with
    fewer than n remaining entries.
    """
    junk = (query.pids[:, None] == gallery.pids[None, :]) & (query.cams[:, None] == gallery.cams[None, :])
    d = np.where(junk, np.inf, dist)
    n = min(n, d.shape[1])
    part = np.argpartition(d, n - 1, axis=1)[:, :n] if n < d.shape[1] else np.tile(np.arange(n), (len(d), 1))
    values = np.take_along_axis(d, part, axis=1)
    order = np.lexsort((part, values))
    part, values = np.take_along_axis(part, order, axis=1), np.take_along_axis(values, order, axis=1)
    return np.where(np.isinf(values), -1, part)


def top_n_dense(dist: np.ndarray, query: Side, gallery: Side, n: int, step: int) -> np.ndarray:
    """`top_n` of a dense matrix, `step` rows at a time (bounds the junk mask)."""
    step = max(1, step)
    return np.concatenate(
        [top_n(dist[s : s + step], query.rows(s, s + step), gallery, n) for s in range(0, len(dist), step)]
    )


def check_finite(rows: Tensor, row_offset: int, name: str | None) -> None:
    """QAConvError naming the first query whose scores hold NaN or inf (a diverged model)."""
    finite = torch.isfinite(rows).all(dim=1)
    if not bool(finite.all()):
        bad = row_offset + int((~finite).nonzero()[0, 0])
        where = f" of {name}" if name else ""
        raise QAConvError(
            f"non-finite QAConv score (NaN or inf) for query {bad}{where}: the feature maps or the matcher's "
            "weights hold NaN/inf (a diverged checkpoint?)"
        )


def stream_raw(
    matcher: QAConv,
    q_maps: Tensor,
    g_maps: Tensor,
    query: Side,
    gallery: Side,
    *,
    options: EvaluationConfig,
    dtype: torch.dtype,
    device: torch.device,
    keep: bool,
    report: int,
    name: str | None,
) -> tuple[RankResult, np.ndarray | None, np.ndarray | None]:
    """Metrics of -score, fed a finished row block at a time; optionally the dense scores and the top lists."""
    num_query, num_gallery = len(q_maps), len(g_maps)
    acc = RankAccumulator(MAX_RANK, name=name)
    scores = np.empty((num_query, num_gallery), dtype=np.float32) if keep else None
    top = np.empty((num_query, min(report, num_gallery)), dtype=np.int64) if report else None

    def consume(p0: int, dist: np.ndarray) -> None:
        rows = query.rows(p0, p0 + len(dist))
        acc.update(dist, rows.pids, rows.cams, gallery.pids, gallery.cams)
        if top is not None:
            top[p0 : p0 + len(dist)] = top_n(dist, rows, gallery, report)

    pending: Future | None = None
    with ThreadPoolExecutor(1) as pool:  # ranks one row block while the next one is scored
        for p0, block in _score_rows(matcher, q_maps, g_maps, options=options, dtype=dtype, device=device):
            check_finite(block, p0, name)
            dist = block.neg_().cpu().numpy()
            if scores is not None:
                np.negative(dist, out=scores[p0 : p0 + len(dist)])
            if pending is not None:
                pending.result()
            pending = pool.submit(consume, p0, dist)
        if pending is not None:
            pending.result()
    return acc.result(), scores, top


def _score_rows(
    matcher: QAConv,
    q_maps: Tensor,
    g_maps: Tensor,
    *,
    options: EvaluationConfig,
    dtype: torch.dtype,
    device: torch.device,
) -> Iterator[tuple[int, Tensor]]:
    """(first query, [rows, G] scores) for each query-row block, assembled from the gallery blocks; each
    block is a fresh tensor, so a consumer may keep reading the previous one."""
    num_gallery = len(g_maps)
    rows = torch.empty(0)
    blocks = score_blocks(
        matcher, q_maps, g_maps, prob_block=options.prob_block, gal_block=options.gal_block, dtype=dtype, device=device
    )
    for p0, g0, block in blocks:
        if g0 == 0:
            rows = torch.empty(block.shape[0], num_gallery, device=block.device)
        rows[:, g0 : g0 + block.shape[1]] = block
        if g0 + block.shape[1] == num_gallery:
            yield p0, rows
