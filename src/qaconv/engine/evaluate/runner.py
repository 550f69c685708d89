"""`run_evaluation`: the one code path of `qaconv evaluate` and of the trainer's final test.

For each test set: feature maps once per split (from the cache when asked), `evaluate_dataset`, the
optional score files and ranked-list report, the console table, and its entry merged into
OUT/results.json. Everything that can be checked (the output folder and its lock, results.json, the test
sets, the cache folder) is checked before the first feature map is extracted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from qaconv.config import EvaluationConfig, ModelConfig, flag_names, namer, validate
from qaconv.cpus import default_workers
from qaconv.data.datasets import ReIDDataset
from qaconv.engine.checkpoint import state_fingerprint
from qaconv.errors import QAConvError
from qaconv.folders import DEMO, EVALUATION, RUN, check_output, kind_of, mark
from qaconv.io import check_free_space
from qaconv.lock import FolderLock
from qaconv.matching import QAConv
from qaconv.rundir import RESULTS

from .cache import FeatureCache, split_maps
from .maps import evaluate_dataset
from .options import resolve_eval_dtype
from .outputs import format_table, merge_result, read_results, write_score_files
from .result import EvalResult
from .testsets import file_stem, load_testsets

DENSE_WARN_BYTES = 2**30


def run_evaluation(
    model: nn.Module,
    matcher: QAConv,
    model_config: ModelConfig,
    testsets: list[str],
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: EvaluationConfig | None = None,
    device: torch.device | str | None = None,
    *,
    workers: int | None = None,
    source: str | None = None,
    locked: bool = False,
) -> dict[str, dict[str, Any]]:
    """Evaluate on each test set, print its table, and merge its entry into out_dir/results.json.

    Test sets are registered names (looked up under data_dir) or Market-style folders; all are loaded
    before any feature is extracted, so a typo fails at once. The output folder is locked
    (`qaconv.lock.FolderLock`) for the whole evaluation: a second qaconv process writing there is refused
    at once with a message naming the holder; `locked=True` says the caller holds that lock already (the
    end of `qaconv train`). Each entry is merged into results.json (re-read, updated, atomically replaced)
    as soon as its test set is done; other entries are kept. `source` (e.g. the checkpoint path) is
    recorded. Returns {label: entry} as written.
    """
    options = validate(options or EvaluationConfig(), namer(flag_names(EvaluationConfig)))
    workers = default_workers() if workers is None else workers
    device = torch.device(device) if device is not None else next(model.parameters()).device
    out_dir = check_output(out_dir, EVALUATION, "--out", accepts=[RUN, DEMO])  # results are added, not replaced
    read_results(out_dir / RESULTS)  # a broken results.json fails now, not after the first test set
    loaded = load_testsets(testsets, data_dir)
    if options.save_scores:  # a float32 matrix per stage, in the .npz and the .mat file
        stages = 1 + options.rerank + options.tlift
        needed = sum(2 * 4 * stages * len(ds.query) * len(ds.gallery) for _, ds in loaded)
        check_free_space(out_dir, needed, "--save-scores")
    if any("/" in label for label, _ in loaded):
        print(f"test sets share a folder name; labelled {', '.join(label for label, _ in loaded)}")
    cache_folder = FeatureCache.prepare(options.cache_dir) if options.cache_dir else None
    with contextlib.nullcontext() if locked else FolderLock(out_dir, "qaconv evaluate"):
        if not locked:
            _remove_partial_writes(out_dir)
        if kind_of(out_dir) is None:
            mark(out_dir, EVALUATION)
        model.to(device)
        matcher.to(device)  # modes are left alone: extraction switches to eval and back, scoring is eval-mode math
        cache = FeatureCache(cache_folder, state_fingerprint(model, matcher, model_config)) if cache_folder else None
        run = _Evaluation(model, matcher, model_config, out_dir, options, device, workers, cache, source)
        out = {label: run.record(label, ds) for label, ds in loaded}
    print(f"results: {out_dir / RESULTS}")
    return out


def _remove_partial_writes(out_dir: Path) -> None:
    """Temporary files of results.json and score-file writes that a killed evaluation left behind (only the
    holder of the folder's lock may remove them)."""
    for tmp in (*out_dir.glob(f".{RESULTS}.*.tmp"), *out_dir.glob(".*_score.*.tmp")):
        tmp.unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class _Evaluation:
    """What every test set of one `run_evaluation` call is evaluated with, and where its results go."""

    model: nn.Module
    matcher: QAConv
    config: ModelConfig
    out_dir: Path
    options: EvaluationConfig
    device: torch.device
    workers: int
    cache: FeatureCache | None
    source: str | None

    def record(self, label: str, ds: ReIDDataset) -> dict[str, Any]:
        """One test set evaluated, its table printed and its entry merged into results.json."""
        try:
            entry = self.entry(label, ds)
        except QAConvError as exc:
            message = str(exc)
            raise QAConvError(message if label in message else f"test set {label}: {message}") from exc
        entry["checkpoint"] = self.source
        entry["options"] = dataclasses.asdict(self.options)
        print(format_table(label, entry))
        merge_result(self.out_dir / RESULTS, label, entry)
        return entry

    def entry(self, label: str, ds: ReIDDataset) -> dict[str, Any]:
        """One test set's results.json entry (its files written)."""
        for split in ("query", "gallery"):
            if not ds.split(split):
                raise QAConvError(f"test set {label} has no {split} images (in {ds.root})")
        options, device = self.options, self.device
        dtype = resolve_eval_dtype(options.dtype, device)
        start = time.perf_counter()
        kwargs = {"config": self.config, "options": options, "workers": self.workers, "dtype": dtype,
                  "device": device, "cache": self.cache}  # fmt: skip
        q_maps = split_maps(self.model, ds.query, "query", label, **kwargs)
        g_maps = split_maps(self.model, ds.gallery, "gallery", label, **kwargs)
        extract_seconds = time.perf_counter() - start
        q_maps, g_maps = _place([q_maps, g_maps], device)
        dense_bytes = 4 * len(ds.query) * len(ds.gallery)
        if options.save_scores and dense_bytes > DENSE_WARN_BYTES:
            print(
                f"{label}: --save-scores keeps the dense {len(ds.query)} x {len(ds.gallery)} score matrix "
                f"({dense_bytes / 2**30:.1f} GiB) in memory"
            )
        result = evaluate_dataset(self.matcher, q_maps, g_maps, ds, options=options, name=label, device=device)
        result.seconds = {"extract": extract_seconds, **result.seconds}
        entry = {
            "num_query": len(ds.query),
            "num_gallery": len(ds.gallery),
            "time_info": ds.has_time,
            "root": ds.root,
            "dtype": str(dtype).removeprefix("torch."),
            **result.to_dict(),
        }
        files = _write_files(self.out_dir, label, ds, result, options)
        if files:
            entry["files"] = [os.path.relpath(p, self.out_dir) for p in files]
        return entry


def _write_files(
    out_dir: Path, label: str, ds: ReIDDataset, result: EvalResult, options: EvaluationConfig
) -> list[Path]:
    """The score files (--save-scores) and the ranked-list report (--report) of one test set."""
    files: list[Path] = []
    stem = file_stem(label)
    if options.save_scores:
        files += write_score_files(out_dir, stem, result, ds.query, ds.gallery)
    if options.report:
        from qaconv.viz.ranked_lists import write_ranked_lists

        files += write_ranked_lists(
            out_dir / "report" / stem,
            label,
            ds.query,
            ds.gallery,
            result.top,
            result.metrics[result.final_stage].ap,
            stage=result.final_stage,
        )
    return files


def _place(maps: list[Tensor], device: torch.device) -> list[Tensor]:
    """Move the maps to a CUDA device when they take under half its free memory (else blocks are copied)."""
    if device.type != "cuda":
        return maps
    need = sum(m.numel() * m.element_size() for m in maps)
    free, _ = torch.cuda.mem_get_info(device)
    return [m.to(device) for m in maps] if need < free / 2 else maps
