"""The stages after the raw scores (docs/evaluation.md): k-reciprocal re-ranking of the QAConv distances over
queries + gallery, and TLift on the re-ranked (or sigmoid) scores.

Re-ranking reads the (Q+G) x (Q+G) QAConv distances in row blocks through the metrics' block-wise API
and returns a dense Q x G matrix; TLift needs that dense matrix too (it only runs on the sets with time
information, all of Market-1501 size).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from qaconv.config.tree import EvaluationConfig
from qaconv.errors import QAConvError
from qaconv.matching import QAConv, pair_scores, score_blocks
from qaconv.metrics import k_reciprocal_rerank_blockwise, tlift

from .side import Side
from .streaming import check_finite


def _gather(q_maps: Tensor, g_maps: Tensor, index: Tensor) -> Tensor:
    """Maps of items `index` of the concatenation [queries; gallery], without concatenating everything."""
    num_query = len(q_maps)
    index = index.to(q_maps.device)
    out = torch.empty(len(index), *q_maps.shape[1:], dtype=q_maps.dtype, device=q_maps.device)
    is_query = index < num_query
    out[is_query] = q_maps[index[is_query]]
    out[~is_query] = g_maps[(index[~is_query] - num_query).to(g_maps.device)].to(out.device)
    return out


@torch.inference_mode()
def _to_dist(scores: Tensor, kind: str) -> Tensor:
    return scores.neg() if kind == "neg_score" else 1.0 - torch.sigmoid(scores / 10.0)


class _QAConvDistances:
    """Rows and single pairs of the (Q+G) x (Q+G) QAConv distances, scored on demand; remembers the
    lowest column maximum seen, to explain a failure of re-ranking's column normalisation."""

    def __init__(
        self, matcher: QAConv, q_maps: Tensor, g_maps: Tensor, options: EvaluationConfig, dtype: torch.dtype, device
    ) -> None:
        self.matcher, self.q_maps, self.g_maps = matcher, q_maps, g_maps
        self.options, self.dtype, self.device = options, dtype, device
        self.lowest_colmax = np.inf

    def rows(self, start: int, stop: int) -> np.ndarray:
        num_query = len(self.q_maps)
        prob = _gather(self.q_maps, self.g_maps, torch.arange(start, stop))
        out = np.empty((stop - start, num_query + len(self.g_maps)), dtype=np.float32)
        for gal, offset in ((self.q_maps, 0), (self.g_maps, num_query)):
            blocks = score_blocks(
                self.matcher,
                prob,
                gal,
                prob_block=self.options.prob_block,
                gal_block=self.options.gal_block,
                dtype=self.dtype,
                device=self.device,
            )
            for p0, g0, block in blocks:
                check_finite(block, start + p0, None)
                cols = slice(offset + g0, offset + g0 + block.shape[1])
                out[p0 : p0 + block.shape[0], cols] = _to_dist(block, self.options.rerank_dist).cpu().numpy()
        self.lowest_colmax = min(self.lowest_colmax, float(out.max(axis=0).min()))
        return out

    def pairs(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        a = _gather(self.q_maps, self.g_maps, torch.from_numpy(r))
        b = _gather(self.q_maps, self.g_maps, torch.from_numpy(c))
        scores = pair_scores(self.matcher, a, b, dtype=self.dtype, device=self.device)
        return _to_dist(scores, self.options.rerank_dist).cpu().numpy()


def rerank_maps(
    matcher: QAConv,
    q_maps: Tensor,
    g_maps: Tensor,
    *,
    options: EvaluationConfig,
    dtype: torch.dtype,
    device: torch.device,
) -> np.ndarray:
    """k-reciprocal re-ranked [Q, G] distances from QAConv distances over queries + gallery (docs/metrics.md).

    Rows of the (Q+G) x (Q+G) distance matrix are scored on demand, one block at a time; the pairs the
    expansion step needs outside the neighbour lists are scored one by one (`pair_scores`).
    """
    dist = _QAConvDistances(matcher, q_maps, g_maps, options, dtype, device)
    num_total = len(q_maps) + len(g_maps)
    try:
        return k_reciprocal_rerank_blockwise(
            dist.rows, num_total, len(q_maps), options.k1, options.k2, options.lambda_value, pairs=dist.pairs
        )
    except QAConvError as exc:
        if options.rerank_dist == "neg_score" and dist.lowest_colmax <= 0:
            raise QAConvError(
                "re-ranking divides the distances by each column's maximum, but some item's -score distances are "
                "all <= 0 (every QAConv score is positive, e.g. an untrained matcher); use --rerank-dist sigmoid"
            ) from exc
        raise


def lift(score: np.ndarray, query: Side, gallery: Side, num_cams: int, options: EvaluationConfig) -> np.ndarray:
    """TLift of a [Q, G] similarity in [0, 1] with the sides' cameras and times."""
    return tlift(
        score,
        gallery.cams,
        gallery.times,
        query.cams,
        query.times,
        num_cams,
        tau=options.tau,
        sigma=options.sigma,
        K=options.K,
        alpha=options.alpha,
    )
