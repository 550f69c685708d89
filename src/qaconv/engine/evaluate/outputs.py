"""What an evaluation leaves behind: results.json entries (merged, written atomically), the score files
(.npz / .mat with the published field names, written atomically) and the console table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from qaconv.errors import QAConvError
from qaconv.io import atomic_write, atomic_write_json

from .result import STAGES, EvalResult

MAT_MAX_BYTES = 2**31 - 1  # MATLAB v5 files store each variable's size in 32 bits


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


def merge_result(path: str | os.PathLike, label: str, entry: dict[str, Any]) -> None:
    """Put one test set's entry into results.json: re-read the file (an earlier run's entries stay),
    replace this label's entry, and atomically replace the file (`qaconv.io.atomic_write_json`).
    `run_evaluation` calls it while holding the output folder's `FolderLock`, so no other qaconv
    process writes the file in between."""
    path = Path(path)
    results = read_results(path)
    results[label] = entry
    atomic_write_json(path, results)


def write_score_files(
    out_dir: str | os.PathLike, stem: str, result: EvalResult, query: list, gallery: list
) -> list[Path]:
    """`<stem>_score.npz` and `<stem>_score.mat` with the published code's field names (docs/evaluation.md).

    score: the raw QAConv scores [Q, G] (the published file held 1 - dist = 1 + score: same order);
    score_rerank: 1 - re-ranked distance; score_tlift: the TLift output (each only when computed);
    prob_ids/gal_ids, prob_cams/gal_cams (0-based), prob_time/gal_time (s), prob_list/gal_list (paths).
    The .mat file is skipped (with a message) when the matrix exceeds MATLAB v5's 2 GiB per variable.
    """
    import scipy.io

    if result.scores is None:
        raise QAConvError("write_score_files: the evaluation did not keep the scores (EvaluationConfig.save_scores)")
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
    npz = atomic_write(out_dir / f"{stem}_score.npz", lambda f: np.savez(f, **fields, **_arrays(lists)))
    written = [npz]
    if max(np.asarray(v).nbytes for v in fields.values()) > MAT_MAX_BYTES:
        print(f"{stem}: score matrix over 2 GiB; wrote {npz.name} only (MATLAB v5 .mat files cannot hold it)")
        return written
    cells = {k: np.array(v, dtype=object) for k, v in lists.items()}
    mat = atomic_write(
        out_dir / f"{stem}_score.mat",
        lambda f: scipy.io.savemat(f, {**fields, **cells}, oned_as="column", do_compression=True),
    )
    written.append(mat)
    return written


def _arrays(lists: dict[str, list[str]]) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in lists.items()}


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
