"""Evaluation: feature maps once per split, QAConv scores streamed into the ranking metrics, optional
k-reciprocal re-ranking and TLift, then results.json, score files and ranked-list reports.

One concept per module:

- `options`: the scoring dtype of `qaconv.config.EvaluationConfig.dtype` on a device (the options are the
  config tree's `EvaluationConfig`, declared once with their ranges);
- `side`: `Side`, the ids, cameras and times of the queries or the gallery;
- `streaming`: raw scores streamed into the ranking accumulator in query-row blocks, top-N lists;
- `stages`: re-ranking and TLift on top of the QAConv scores;
- `maps`: `evaluate_maps` / `evaluate_dataset`, the stages of one evaluation on feature maps;
- `testsets`: loading the test sets and giving each a distinct label;
- `cache`: feature maps per split, optionally cached on disk;
- `outputs`: results.json (merged, atomic), score files, console tables;
- `runner`: `run_evaluation`, the code path of `qaconv evaluate` and of the trainer's final test.

docs/evaluation.md describes the outputs.
"""

from .cache import FeatureCache, split_maps
from .maps import evaluate_dataset, evaluate_maps
from .options import DTYPES, resolve_eval_dtype
from .outputs import format_table, merge_result, read_results, write_score_files
from .result import STAGES, EvalResult
from .runner import run_evaluation
from .side import Side
from .stages import rerank_maps
from .streaming import MAX_RANK, top_n
from .testsets import file_stem, load_testset, load_testsets

__all__ = [
    "DTYPES",
    "MAX_RANK",
    "STAGES",
    "EvalResult",
    "FeatureCache",
    "Side",
    "evaluate_dataset",
    "evaluate_maps",
    "file_stem",
    "format_table",
    "load_testset",
    "load_testsets",
    "merge_result",
    "read_results",
    "rerank_maps",
    "resolve_eval_dtype",
    "run_evaluation",
    "split_maps",
    "top_n",
    "write_score_files",
]
