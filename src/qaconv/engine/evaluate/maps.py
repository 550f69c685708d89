"""`evaluate_maps`: the stages of one evaluation on feature maps (raw, re-ranking, TLift) and their metrics."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from qaconv.config import EvaluationConfig, flag_names, namer, validate
from qaconv.data.datasets import ReIDDataset
from qaconv.errors import QAConvError
from qaconv.matching import QAConv

from .options import resolve_eval_dtype
from .result import EvalResult
from .side import Side
from .stages import lift, rerank_maps
from .streaming import rank_dense, stream_raw, top_n_dense


def evaluate_maps(
    matcher: QAConv,
    q_maps: Tensor,
    g_maps: Tensor,
    query: Side,
    gallery: Side,
    *,
    options: EvaluationConfig | None = None,
    num_cams: int | None = None,
    name: str | None = None,
    device: torch.device | str | None = None,
) -> EvalResult:
    """CMC / mAP / mINP of query maps against gallery maps; re-ranking and TLift when the options ask.

    Raw scores are streamed (memory: two [prob_block, G] row blocks beyond the maps). TLift runs only
    when both sides have times, on 1 - re-ranked distance, or on sigmoid(score / 10) without re-ranking;
    its metrics use dist = 1 - lifted score, as the published code. `num_cams` (default: the largest
    camera id + 1) is TLift's camera count. `name` goes into error messages.
    """
    options = validate(options or EvaluationConfig(), namer(flag_names(EvaluationConfig)))
    _check_sizes(q_maps, g_maps, query, gallery, name)
    device = torch.device(device) if device is not None else next(matcher.parameters()).device
    dtype = resolve_eval_dtype(options.dtype, device)
    use_tlift = options.tlift and query.times is not None and gallery.times is not None
    result = EvalResult(metrics={})

    start = time.perf_counter()
    result.metrics["raw"], result.scores, result.top = stream_raw(
        matcher,
        q_maps,
        g_maps,
        query,
        gallery,
        options=options,
        dtype=dtype,
        device=device,
        keep=options.save_scores or (use_tlift and not options.rerank),
        report=options.report if not (options.rerank or use_tlift) else 0,
        name=name,
    )
    result.seconds["score"] = time.perf_counter() - start
    final_dist = None
    if options.rerank:
        start = time.perf_counter()
        result.rerank_dist = rerank_maps(matcher, q_maps, g_maps, options=options, dtype=dtype, device=device)
        result.metrics["rerank"] = rank_dense(result.rerank_dist, query, gallery, name)
        result.seconds["rerank"] = time.perf_counter() - start
        final_dist = result.rerank_dist
    if use_tlift:
        start = time.perf_counter()
        final_dist = _tlift_stage(result, query, gallery, num_cams, options)
        result.metrics["tlift"] = rank_dense(final_dist, query, gallery, name)
        result.seconds["tlift"] = time.perf_counter() - start
    elif options.tlift:
        result.notes.append("TLift skipped: the test set has no time information")
    if options.report and final_dist is not None:
        result.top = top_n_dense(final_dist, query, gallery, options.report, options.prob_block)
    return result


def _check_sizes(q_maps: Tensor, g_maps: Tensor, query: Side, gallery: Side, name: str | None) -> None:
    if len(q_maps) == 0 or len(g_maps) == 0:
        what = name or "evaluation"
        raise QAConvError(f"{what}: needs query and gallery images, got {len(q_maps)} and {len(g_maps)}")
    for side, maps, what in ((query, q_maps, "query"), (gallery, g_maps, "gallery")):
        if len(side) != len(maps):
            raise QAConvError(f"the {what} labels have {len(side)} entries but there are {len(maps)} {what} maps")


def _tlift_stage(
    result: EvalResult, query: Side, gallery: Side, num_cams: int | None, options: EvaluationConfig
) -> np.ndarray:
    """TLift on 1 - re-ranked distance (or sigmoid(score / 10) without re-ranking); returns its distances.

    The raw scores kept only for this stage are dropped unless --save-scores asked for them.
    """
    if options.rerank:
        in_score = 1.0 - result.rerank_dist
    else:
        in_score = 1.0 / (1.0 + np.exp(-result.scores / np.float32(10.0)))
        if not options.save_scores:
            result.scores = None
    if num_cams is None:
        num_cams = int(max(query.cams.max(), gallery.cams.max())) + 1
    result.tlift_score = lift(in_score, query, gallery, num_cams, options)
    return 1.0 - result.tlift_score


def evaluate_dataset(
    matcher: QAConv,
    q_maps: Tensor,
    g_maps: Tensor,
    ds: ReIDDataset,
    *,
    options: EvaluationConfig | None = None,
    name: str | None = None,
    device: torch.device | str | None = None,
) -> EvalResult:
    """`evaluate_maps` with the labels, cameras and times (when it has them) of a data set's query and gallery."""
    query, gallery = (Side.from_records(records, ds.has_time) for records in (ds.query, ds.gallery))
    return evaluate_maps(
        matcher, q_maps, g_maps, query, gallery, options=options, num_cams=ds.num_cams, name=name, device=device
    )
