"""QAConv matcher and memory-bounded all-pairs scoring."""

from qaconv.matching.qaconv import QAConv, locations_by_row
from qaconv.matching.scoring import pair_scores, pairwise_scores, score_blocks

__all__ = ["QAConv", "locations_by_row", "pair_scores", "pairwise_scores", "score_blocks"]
