"""QAConv matcher, its eval-mode score chain, memory-bounded all-pairs scoring and running top-k."""

from qaconv.matching.eval_scorer import EvalScorer, locations_by_row
from qaconv.matching.qaconv import QAConv
from qaconv.matching.scoring import pair_scores, pairwise_scores, score_blocks
from qaconv.matching.topk import running_topk, topk_columns

__all__ = [
    "EvalScorer",
    "QAConv",
    "locations_by_row",
    "pair_scores",
    "pairwise_scores",
    "running_topk",
    "score_blocks",
    "topk_columns",
]
