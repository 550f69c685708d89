"""`EvalResult`: the metrics of each stage of one evaluation, its timings and the dense arrays it kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qaconv.metrics import RankResult

STAGES = ("raw", "rerank", "tlift")


@dataclass
class EvalResult:
    """What `evaluate_maps` found: metrics per stage ('raw', 'rerank', 'tlift'), seconds per step, and the
    dense matrices that were needed anyway (raw `scores` only when kept, re-ranked distances, TLift scores).

    `top` holds, for the last stage, the `report` nearest gallery indices of each query with the
    same-id-same-camera entries left out (-1 pads a list shorter than `report`).
    """

    metrics: dict[str, RankResult]
    seconds: dict[str, float] = field(default_factory=dict)
    scores: np.ndarray | None = None
    rerank_dist: np.ndarray | None = None
    tlift_score: np.ndarray | None = None
    top: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def final_stage(self) -> str:
        return [s for s in STAGES if s in self.metrics][-1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: {stage: {rank1, rank5, rank10, rank20, mAP, mINP, num_valid, num_query}}, seconds, notes."""
        out: dict[str, Any] = {stage: res.to_dict() for stage, res in self.metrics.items()}
        out["seconds"] = {k: round(v, 3) for k, v in self.seconds.items()}
        if self.notes:
            out["notes"] = list(self.notes)
        return out
