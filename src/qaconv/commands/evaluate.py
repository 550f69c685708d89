"""`qaconv evaluate`: test a checkpoint on one or more test sets (CMC / mAP / mINP, re-ranking, TLift)."""

from __future__ import annotations

import argparse
import os

from qaconv.config import EvaluateConfig, add_flags, flag_names, given
from qaconv.config.flags import options_from
from qaconv.errors import QAConvError

#: How `qaconv evaluate` names its options (the others by their field names: --k1, --lambda-value, ...).
EVALUATE_FLAGS = {"evaluation.testsets": "testset"}
EVALUATE_NAMES = flag_names(EvaluateConfig, EVALUATE_FLAGS)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint on test sets: Rank-1/5/10, mAP, mINP; results.json, scores, report",
        description="Extract feature maps once per split, score every query against the gallery with QAConv in "
        "memory-bounded blocks, and print Rank-1/5/10, mAP and mINP per test set. Results are merged into "
        "OUT/results.json. See docs/evaluation.md.",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="RUN_DIR|FILE",
        help="a checkpoint file, or a run folder (its checkpoint.pt)",
    )
    parser.add_argument("--data-dir", default="data", metavar="DIR", help="folder of the data sets (default: data)")
    parser.add_argument(
        "--out", metavar="DIR", help="output folder (default: the run folder, or the checkpoint file's folder)"
    )
    add_flags(parser, EvaluateConfig, EVALUATE_NAMES)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qaconv.device import resolve_device
    from qaconv.engine.checkpoint import load_model, resolve_checkpoint
    from qaconv.engine.evaluate import run_evaluation

    if "evaluation.testsets" not in given(args):
        raise QAConvError("--testset is required: comma-separated test set names (qaconv datasets) or folders")
    options = options_from(EvaluateConfig, args, EVALUATE_NAMES)
    if not options.evaluation.testsets:
        raise QAConvError("--testset: give at least one test set name or data set folder (comma-separated)")
    path = resolve_checkpoint(args.checkpoint)
    out = args.out or (args.checkpoint if os.path.isdir(args.checkpoint) else os.path.dirname(path))
    device = resolve_device(options.run.device)
    model, matcher, config = load_model(path, device)
    print(f"checkpoint: {path} ({config.arch}, {config.height}x{config.width}) on {device}")
    run_evaluation(model, matcher, config, options.evaluation.testsets, args.data_dir, out, options.evaluation,
                   device, workers=options.run.workers, source=str(path))  # fmt: skip
    return 0
