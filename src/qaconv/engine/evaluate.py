"""Evaluation: feature maps once per split, QAConv scores streamed into the ranking metrics, optional
k-reciprocal re-ranking and TLift, then results.json, score files and ranked-list reports.

`evaluate_maps` scores query-row blocks against the whole gallery (`score_blocks`, dist = -score)
and hands each finished [rows, G] block to the metrics' streaming accumulator on a worker thread
while the next block is scored, so the peak memory is the feature maps plus two row blocks, never
Q x G. Re-ranking reads the (Q+G) x (Q+G) QAConv distances in row blocks through the metrics'
block-wise API and returns a dense Q x G matrix; TLift needs that dense matrix too (it is only run
on the sets with time information, all of Market-1501 size). `run_evaluation` is the one code path
of `qaconv evaluate` and of the trainer's final test. docs/evaluation.md describes the outputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from qaconv.config import ModelConfig
from qaconv.data.datasets import ReIDDataset, open_dataset
from qaconv.engine.checkpoint import save_checkpoint, state_fingerprint
from qaconv.engine.features import extract_feature_maps
from qaconv.errors import QAConvError
from qaconv.matching import QAConv, pair_scores, score_blocks
from qaconv.metrics import RankAccumulator, RankResult, evaluate_rank, k_reciprocal_rerank_blockwise, tlift

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
RERANK_DISTS = ("neg_score", "sigmoid")
STAGES = ("raw", "rerank", "tlift")
MAX_RANK = 100
RESULTS_FILE = "results.json"
MAT_MAX_BYTES = 2**31 - 1  # MATLAB v5 files store each variable's size in 32 bits
DENSE_WARN_BYTES = 2**30


@dataclass
class EvalOptions:
    """How to evaluate; every field is also a flag of `qaconv evaluate` (underscores become dashes).

    dtype: 'auto' (float16 on CUDA as the published code, float32 elsewhere), 'float32', 'bfloat16' or
    'float16' (CUDA only); used for the forward (autocast), the stored maps and the scoring.
    rerank_dist: the distance fed to re-ranking, 'neg_score' (-score, the published code since 2023) or
    'sigmoid' (1 - sigmoid(score / 10), the paper-era code; always positive).
    report: gallery items per ranked list in the report (0: no report).
    cache_dir: keep extracted maps there, keyed by the model's weights, the image list, size and dtype.
    """

    batch_size: int = 64
    workers: int = 4
    prob_block: int = 256
    gal_block: int = 4096
    dtype: str = "auto"
    rerank: bool = False
    tlift: bool = False
    tau: float = 100.0
    sigma: float = 200.0
    K: int = 10
    alpha: float = 0.2
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3
    rerank_dist: str = "neg_score"
    save_scores: bool = False
    report: int = 0
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "prob_block", "gal_block", "K", "k1", "k2"):
            if int(getattr(self, name)) < 1:
                raise QAConvError(f"{_flag(name)} must be a positive integer, got {getattr(self, name)}")
        for name in ("workers", "report"):
            if int(getattr(self, name)) < 0:
                raise QAConvError(f"{_flag(name)} must be >= 0, got {getattr(self, name)}")
        if self.dtype not in ("auto", *DTYPES):
            raise QAConvError(f"--dtype must be auto, {', '.join(DTYPES)}; got {self.dtype!r}")
        if self.rerank_dist not in RERANK_DISTS:
            raise QAConvError(f"--rerank-dist must be one of {', '.join(RERANK_DISTS)}, got {self.rerank_dist!r}")
        if not self.sigma > 0 or not self.tau > 0:
            raise QAConvError(f"--tau and --sigma must be positive, got {self.tau} and {self.sigma}")
        if not 0.0 <= self.lambda_value <= 1.0:
            raise QAConvError(f"--lambda-value must be in [0, 1], got {self.lambda_value}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def resolve_eval_dtype(name: str, device: torch.device) -> torch.dtype:
    """torch dtype for --dtype on `device` ('auto': float16 on CUDA, float32 elsewhere)."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    dtype = DTYPES[name]
    if dtype == torch.float16 and device.type != "cuda":
        raise QAConvError(f"--dtype float16 needs a CUDA device (this is {device.type}); use float32 or bfloat16")
    return dtype


# ------------------------------------------------------------------------------------------------ results


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


# ------------------------------------------------------------------------------------------ core streaming


def _as_array(values: Any, name: str, length: int) -> np.ndarray:
    arr = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values).reshape(-1)
    if arr.size != length:
        raise QAConvError(f"{name} has {arr.size} entries but there are {length} feature maps")
    return arr


def _check_finite(rows: Tensor, row_offset: int, name: str | None) -> None:
    finite = torch.isfinite(rows).all(dim=1)
    if not bool(finite.all()):
        bad = row_offset + int((~finite).nonzero()[0, 0])
        where = f" of {name}" if name else ""
        raise QAConvError(
            f"non-finite QAConv score (NaN or inf) for query {bad}{where}: the feature maps or the matcher's "
            "weights hold NaN/inf (a diverged checkpoint?)"
        )


def top_n(
    dist: np.ndarray, q_pids: np.ndarray, q_cams: np.ndarray, g_pids: np.ndarray, g_cams: np.ndarray, n: int
) -> np.ndarray:
    """The n nearest gallery indices per row of `dist`, nearest first, without same-id-same-camera entries.

    Ties at the cut are broken arbitrarily (argpartition), inside the list by index; -1 pads rows with
    fewer than n remaining entries.
    """
    junk = (q_pids[:, None] == g_pids[None, :]) & (q_cams[:, None] == g_cams[None, :])
    d = np.where(junk, np.inf, dist)
    n = min(n, d.shape[1])
    part = np.argpartition(d, n - 1, axis=1)[:, :n] if n < d.shape[1] else np.tile(np.arange(n), (len(d), 1))
    values = np.take_along_axis(d, part, axis=1)
    order = np.lexsort((part, values))
    part, values = np.take_along_axis(part, order, axis=1), np.take_along_axis(values, order, axis=1)
    return np.where(np.isinf(values), -1, part)


def _stream_raw(
    matcher: QAConv,
    q_maps: Tensor,
    g_maps: Tensor,
    labels: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    *,
    options: EvalOptions,
    dtype: torch.dtype,
    device: torch.device,
    keep: bool,
    report: int,
    name: str | None,
) -> tuple[RankResult, np.ndarray | None, np.ndarray | None]:
    """Metrics of -score, fed a finished row block at a time; optionally the dense scores and the top lists."""
    q_pids, q_cams, g_pids, g_cams = labels
    num_query, num_gallery = len(q_maps), len(g_maps)
    acc = RankAccumulator(MAX_RANK, name=name)
    scores = np.empty((num_query, num_gallery), dtype=np.float32) if keep else None
    top = np.empty((num_query, min(report, num_gallery)), dtype=np.int64) if report else None

    def consume(p0: int, dist: np.ndarray) -> None:
        p1 = p0 + len(dist)
        acc.update(dist, q_pids[p0:p1], q_cams[p0:p1], g_pids, g_cams)
        if top is not None:
            top[p0:p1] = top_n(dist, q_pids[p0:p1], q_cams[p0:p1], g_pids, g_cams, report)

    pending: Future | None = None
    rows = torch.empty(0)
    blocks = score_blocks(
        matcher, q_maps, g_maps, prob_block=options.prob_block, gal_block=options.gal_block, dtype=dtype, device=device
    )
    with ThreadPoolExecutor(1) as pool:  # ranks one row block while the next one is scored
        for p0, g0, block in blocks:
            if g0 == 0:  # a fresh buffer: the worker may still be reading the previous one
                rows = torch.empty(block.shape[0], num_gallery, device=block.device)
            rows[:, g0 : g0 + block.shape[1]] = block
            if g0 + block.shape[1] < num_gallery:
                continue
            _check_finite(rows, p0, name)
            dist = rows.neg_().cpu().numpy()
            if scores is not None:
                np.negative(dist, out=scores[p0 : p0 + len(dist)])
            if pending is not None:
                pending.result()
            pending = pool.submit(consume, p0, dist)
        if pending is not None:
            pending.result()
    return acc.result(), scores, top


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


def rerank_maps(
    matcher: QAConv,
    q_maps: Tensor,
    g_maps: Tensor,
    *,
    options: EvalOptions,
    dtype: torch.dtype,
    device: torch.device,
) -> np.ndarray:
    """k-reciprocal re-ranked [Q, G] distances from QAConv distances over queries + gallery (SPEC 2.3).

    Rows of the (Q+G) x (Q+G) distance matrix are scored on demand, one block at a time; the pairs the
    expansion step needs outside the neighbour lists are scored one by one (`pair_scores`).
    """
    num_query, num_total = len(q_maps), len(q_maps) + len(g_maps)
    kind = options.rerank_dist
    lowest_colmax = np.inf

    def rows(start: int, stop: int) -> np.ndarray:
        nonlocal lowest_colmax
        prob = _gather(q_maps, g_maps, torch.arange(start, stop))
        out = np.empty((stop - start, num_total), dtype=np.float32)
        for gal, offset in ((q_maps, 0), (g_maps, num_query)):
            for p0, g0, block in score_blocks(
                matcher,
                prob,
                gal,
                prob_block=options.prob_block,
                gal_block=options.gal_block,
                dtype=dtype,
                device=device,
            ):
                _check_finite(block, start + p0, None)
                cols = slice(offset + g0, offset + g0 + block.shape[1])
                out[p0 : p0 + block.shape[0], cols] = _to_dist(block, kind).cpu().numpy()
        lowest_colmax = min(lowest_colmax, float(out.max(axis=0).min()))
        return out

    def pairs(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        a = _gather(q_maps, g_maps, torch.from_numpy(r))
        b = _gather(q_maps, g_maps, torch.from_numpy(c))
        return _to_dist(pair_scores(matcher, a, b, dtype=dtype, device=device), kind).cpu().numpy()

    try:
        return k_reciprocal_rerank_blockwise(
            rows, num_total, num_query, options.k1, options.k2, options.lambda_value, pairs=pairs
        )
    except QAConvError as exc:
        if kind == "neg_score" and lowest_colmax <= 0:
            raise QAConvError(
                "re-ranking divides the distances by each column's maximum, but some item's -score distances are "
                "all <= 0 (every QAConv score is positive, e.g. an untrained matcher); use --rerank-dist sigmoid"
            ) from exc
        raise


def evaluate_maps(
    matcher: QAConv,
    q_maps: Tensor,
    g_maps: Tensor,
    q_pids: Any,
    q_camids: Any,
    g_pids: Any,
    g_camids: Any,
    *,
    options: EvalOptions | None = None,
    q_times: Any = None,
    g_times: Any = None,
    num_cams: int | None = None,
    name: str | None = None,
    device: torch.device | str | None = None,
) -> EvalResult:
    """CMC / mAP / mINP of query maps against gallery maps; re-ranking and TLift when the options ask.

    Raw scores are streamed (memory: two [prob_block, G] row blocks beyond the maps). TLift runs only
    when times are given, on 1 - re-ranked distance, or on sigmoid(score / 10) without re-ranking; its
    metrics use dist = 1 - lifted score, as the published code. `name` goes into error messages.
    """
    options = options or EvalOptions()
    num_query, num_gallery = len(q_maps), len(g_maps)
    if num_query == 0 or num_gallery == 0:
        raise QAConvError(f"{name or 'evaluation'}: needs query and gallery images, got {num_query} and {num_gallery}")
    labels = (
        _as_array(q_pids, "q_pids", num_query),
        _as_array(q_camids, "q_camids", num_query),
        _as_array(g_pids, "g_pids", num_gallery),
        _as_array(g_camids, "g_camids", num_gallery),
    )
    q_pids, q_cams, g_pids, g_cams = labels
    device = torch.device(device) if device is not None else next(matcher.parameters()).device
    dtype = resolve_eval_dtype(options.dtype, device)
    use_tlift = options.tlift and q_times is not None and g_times is not None
    final_is_raw = not (options.rerank or use_tlift)
    result = EvalResult(metrics={})

    start = time.perf_counter()
    raw, scores, top = _stream_raw(
        matcher,
        q_maps,
        g_maps,
        labels,
        options=options,
        dtype=dtype,
        device=device,
        keep=options.save_scores or (use_tlift and not options.rerank),
        report=options.report if final_is_raw else 0,
        name=name,
    )
    result.metrics["raw"], result.scores, result.top = raw, scores, top
    result.seconds["score"] = time.perf_counter() - start
    final_dist = None
    if options.rerank:
        start = time.perf_counter()
        result.rerank_dist = rerank_maps(matcher, q_maps, g_maps, options=options, dtype=dtype, device=device)
        result.metrics["rerank"] = evaluate_rank(
            result.rerank_dist, q_pids, g_pids, q_cams, g_cams, MAX_RANK, name=name
        )
        result.seconds["rerank"] = time.perf_counter() - start
        final_dist = result.rerank_dist
    if use_tlift:
        start = time.perf_counter()
        if options.rerank:
            in_score = 1.0 - result.rerank_dist
        else:
            in_score = 1.0 / (1.0 + np.exp(-result.scores / np.float32(10.0)))
            if not options.save_scores:
                result.scores = None
        num_cams = num_cams if num_cams is not None else int(max(q_cams.max(), g_cams.max())) + 1
        q_t, g_t = _as_array(q_times, "q_times", num_query), _as_array(g_times, "g_times", num_gallery)
        result.tlift_score = tlift(
            in_score,
            g_cams,
            g_t,
            q_cams,
            q_t,
            num_cams,
            tau=options.tau,
            sigma=options.sigma,
            K=options.K,
            alpha=options.alpha,
        )
        final_dist = 1.0 - result.tlift_score
        result.metrics["tlift"] = evaluate_rank(final_dist, q_pids, g_pids, q_cams, g_cams, MAX_RANK, name=name)
        result.seconds["tlift"] = time.perf_counter() - start
    elif options.tlift:
        result.notes.append("TLift skipped: the test set has no time information")
    if options.report and final_dist is not None:
        step = max(1, options.prob_block)
        result.top = np.concatenate(
            [
                top_n(
                    final_dist[s : s + step], q_pids[s : s + step], q_cams[s : s + step], g_pids, g_cams, options.report
                )
                for s in range(0, num_query, step)
            ]
        )
    return result


# ------------------------------------------------------------------------------------- test sets and maps


def load_testset(name: str, data_dir: str | os.PathLike) -> tuple[str, ReIDDataset]:
    """(label, data set) for a registered name found under data_dir, or a folder (Market-style or csv
    lists; labelled by the folder's name)."""
    try:
        dataset = open_dataset(name, data_dir)
    except QAConvError as exc:
        raise QAConvError(f"--testset {name}: {exc}") from None
    is_path = os.path.exists(os.path.expanduser(name))
    return (os.path.basename(os.path.normpath(name)) if is_path else dataset.name), dataset


def _extract(
    model: nn.Module,
    records: list,
    split: str,
    label: str,
    *,
    config: ModelConfig,
    options: EvalOptions,
    dtype: torch.dtype,
    device: torch.device,
    fingerprint: str | None,
) -> Tensor:
    """Feature maps of one split, from the cache when it holds them for this model, image list, size and dtype."""
    cache_path = key = None
    if options.cache_dir and fingerprint:
        digest = hashlib.sha256(f"{fingerprint}|{config.height}x{config.width}|{dtype}|".encode())
        digest.update("\n".join(r.path for r in records).encode())
        key = digest.hexdigest()
        cache_path = Path(options.cache_dir).expanduser() / f"{label}-{split}-{key[:16]}.pt"
        if cache_path.is_file():
            try:
                cached = torch.load(cache_path, map_location="cpu", mmap=True, weights_only=True)
            except Exception as exc:  # a truncated or foreign file: extract again and overwrite it
                print(f"{label}: ignoring unreadable feature cache {cache_path} ({type(exc).__name__})")
            else:
                if cached.get("key") == key:
                    return cached["maps"]
    maps = extract_feature_maps(
        model,
        records,
        height=config.height,
        width=config.width,
        batch_size=options.batch_size,
        num_workers=options.workers,
        device=device,
        autocast_dtype=dtype,
        out_dtype=dtype,
        progress=f"{label} {split}" if sys.stderr.isatty() else None,
    )
    if cache_path is not None:
        save_checkpoint({"key": key, "maps": maps}, cache_path)
    return maps


def _place(maps: list[Tensor], device: torch.device) -> list[Tensor]:
    """Move the maps to a CUDA device when they take under half its free memory (else blocks are copied)."""
    if device.type != "cuda":
        return maps
    need = sum(m.numel() * m.element_size() for m in maps)
    free, _ = torch.cuda.mem_get_info(device)
    return [m.to(device) for m in maps] if need < free / 2 else maps


# ------------------------------------------------------------------------------------------------- outputs


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """The content of an existing results.json ({} when absent); QAConvError naming it when it is not JSON."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise QAConvError(f"{path} exists but is not a readable JSON object ({exc}); move it away") from None
    if not isinstance(data, dict):
        raise QAConvError(f"{path} holds a JSON {type(data).__name__}, not an object; move it away")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def write_score_files(
    out_dir: str | os.PathLike, label: str, result: EvalResult, query: list, gallery: list
) -> list[Path]:
    """`<label>_score.npz` and `<label>_score.mat` with the published code's field names (SPEC 2.3).

    score: the raw QAConv scores [Q, G] (the published file held 1 - dist = 1 + score: same order);
    score_rerank: 1 - re-ranked distance; score_tlift: the TLift output (each only when computed);
    prob_ids/gal_ids, prob_cams/gal_cams (0-based), prob_time/gal_time (s), prob_list/gal_list (paths).
    The .mat file is skipped (with a message) when the matrix exceeds MATLAB v5's 2 GiB per variable.
    """
    import scipy.io

    if result.scores is None:
        raise QAConvError("write_score_files: the evaluation did not keep the scores (EvalOptions.save_scores)")
    fields: dict[str, Any] = {"score": result.scores}
    if result.rerank_dist is not None:
        fields["score_rerank"] = 1.0 - result.rerank_dist
    if result.tlift_score is not None:
        fields["score_tlift"] = result.tlift_score
    for prefix, records in (("prob", query), ("gal", gallery)):
        fields[f"{prefix}_ids"] = np.array([r.pid for r in records], dtype=np.int64)
        fields[f"{prefix}_cams"] = np.array([r.camid for r in records], dtype=np.int64)
        fields[f"{prefix}_time"] = np.array([r.time for r in records], dtype=np.float64)
    lists = {f"{p}_list": [r.path for r in recs] for p, recs in (("prob", query), ("gal", gallery))}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    npz = out_dir / f"{label}_score.npz"
    np.savez(npz, **fields, **{k: np.array(v) for k, v in lists.items()})
    written = [npz]
    if max(np.asarray(v).nbytes for v in fields.values()) > MAT_MAX_BYTES:
        print(f"{label}: score matrix over 2 GiB; wrote {npz.name} only (MATLAB v5 .mat files cannot hold it)")
        return written
    mat = out_dir / f"{label}_score.mat"
    cells = {k: np.array(v, dtype=object) for k, v in lists.items()}
    scipy.io.savemat(mat, {**fields, **cells}, oned_as="column", do_compression=True)
    written.append(mat)
    return written


def format_table(label: str, entry: dict[str, Any]) -> str:
    """The console table of one test set: Rank-1/5/10, mAP and mINP (%) per stage, and the times."""
    lines = [
        f"{label}: {entry['num_query']} queries ({entry['raw']['num_valid']} valid), {entry['num_gallery']} gallery",
        f"  {'stage':<8}{'Rank-1':>8}{'Rank-5':>8}{'Rank-10':>9}{'mAP':>8}{'mINP':>8}",
    ]
    for stage in STAGES:
        if stage in entry:
            m = entry[stage]
            lines.append(
                f"  {stage:<8}{100 * m['rank1']:8.1f}{100 * m['rank5']:8.1f}{100 * m['rank10']:9.1f}"
                f"{100 * m['mAP']:8.1f}{100 * m['mINP']:8.1f}"
            )
    lines.append("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in entry["seconds"].items()))
    lines += [f"  note: {note}" for note in entry.get("notes", [])]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ the entry point


def evaluate_dataset(
    matcher: QAConv,
    q_maps: Tensor,
    g_maps: Tensor,
    ds: ReIDDataset,
    *,
    options: EvalOptions | None = None,
    name: str | None = None,
    device: torch.device | str | None = None,
) -> EvalResult:
    """`evaluate_maps` with the labels, cameras and times (when it has them) of a data set's query and gallery."""
    times = {}
    if ds.has_time:
        times = {"q_times": [r.time for r in ds.query], "g_times": [r.time for r in ds.gallery]}
    q_labels = ([r.pid for r in ds.query], [r.camid for r in ds.query])
    g_labels = ([r.pid for r in ds.gallery], [r.camid for r in ds.gallery])
    return evaluate_maps(
        matcher, q_maps, g_maps, *q_labels, *g_labels,
        options=options, num_cams=ds.num_cams, name=name, device=device, **times,
    )  # fmt: skip


def _evaluate_testset(
    label: str,
    ds: ReIDDataset,
    model: nn.Module,
    matcher: QAConv,
    config: ModelConfig,
    out_dir: Path,
    options: EvalOptions,
    device: torch.device,
    fingerprint: str | None,
) -> dict[str, Any]:
    for split in ("query", "gallery"):
        if not ds.split(split):
            raise QAConvError(f"test set {label} has no {split} images (in {ds.root})")
    dtype = resolve_eval_dtype(options.dtype, device)
    start = time.perf_counter()
    kwargs = {"config": config, "options": options, "dtype": dtype, "device": device, "fingerprint": fingerprint}
    q_maps = _extract(model, ds.query, "query", label, **kwargs)
    g_maps = _extract(model, ds.gallery, "gallery", label, **kwargs)
    extract_seconds = time.perf_counter() - start
    q_maps, g_maps = _place([q_maps, g_maps], device)
    dense_bytes = 4 * len(ds.query) * len(ds.gallery)
    if options.save_scores and dense_bytes > DENSE_WARN_BYTES:
        print(
            f"{label}: --save-scores keeps the dense {len(ds.query)} x {len(ds.gallery)} score matrix "
            f"({dense_bytes / 2**30:.1f} GiB) in memory"
        )
    result = evaluate_dataset(matcher, q_maps, g_maps, ds, options=options, name=label, device=device)
    result.seconds = {"extract": extract_seconds, **result.seconds}
    entry = {
        "num_query": len(ds.query),
        "num_gallery": len(ds.gallery),
        "time_info": ds.has_time,
        "root": ds.root,
        "dtype": str(dtype).removeprefix("torch."),
        **result.to_dict(),
    }
    files: list[Path] = []
    if options.save_scores:
        files += write_score_files(out_dir, label, result, ds.query, ds.gallery)
    if options.report:
        from qaconv.viz.ranked_lists import write_ranked_lists

        files += write_ranked_lists(
            out_dir / "report" / label,
            label,
            ds.query,
            ds.gallery,
            result.top,
            result.metrics[result.final_stage].ap,
            stage=result.final_stage,
        )
    if files:
        entry["files"] = [os.path.relpath(p, out_dir) for p in files]
    return entry


def run_evaluation(
    model: nn.Module,
    matcher: QAConv,
    model_config: ModelConfig,
    testsets: list[str],
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: EvalOptions | None = None,
    device: torch.device | str | None = None,
    *,
    source: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate on each test set, print its table, and merge its entry into out_dir/results.json.

    Test sets are registered names (looked up under data_dir) or Market-style folders; all are loaded
    before any feature is extracted, so a typo fails at once. results.json keeps the entries of other
    test sets and is rewritten after each test set. `source` (e.g. the checkpoint path) is recorded.
    Returns {label: entry} as written.
    """
    options = options or EvalOptions()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    out_dir = Path(out_dir)
    results_path = out_dir / RESULTS_FILE
    results = read_results(results_path)
    if not testsets:
        raise QAConvError("--testset: give at least one test set name or Market-style folder")
    loaded = [load_testset(name, data_dir) for name in testsets]
    model.to(device)
    matcher.to(device)  # modes are left alone: extraction switches to eval and back, scoring is eval-mode math
    fingerprint = state_fingerprint(model, matcher, model_config) if options.cache_dir else None
    out: dict[str, dict[str, Any]] = {}
    for label, ds in loaded:
        try:
            entry = _evaluate_testset(label, ds, model, matcher, model_config, out_dir, options, device, fingerprint)
        except QAConvError as exc:
            message = str(exc)
            raise QAConvError(message if label in message else f"test set {label}: {message}") from exc
        entry["checkpoint"] = source
        entry["options"] = dataclasses.asdict(options)
        print(format_table(label, entry))
        results[label] = entry
        _write_json(results_path, results)
        out[label] = entry
    print(f"results: {results_path}")
    return out
