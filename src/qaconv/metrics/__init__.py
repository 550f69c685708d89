"""Evaluation metrics: ranking (CMC / mAP / mINP), k-reciprocal re-ranking and temporal lifting (TLift)."""

from .ranking import RankAccumulator, RankResult, evaluate_rank
from .rerank import k_reciprocal_rerank, k_reciprocal_rerank_blockwise
from .tlift import tlift

__all__ = [
    "RankAccumulator",
    "RankResult",
    "evaluate_rank",
    "k_reciprocal_rerank",
    "k_reciprocal_rerank_blockwise",
    "tlift",
]
