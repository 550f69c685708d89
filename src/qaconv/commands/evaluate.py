"""`qaconv evaluate`: test a checkpoint on one or more test sets (CMC / mAP / mINP, re-ranking, TLift)."""

from __future__ import annotations

import argparse
import dataclasses
import os

from qaconv.commands import comma_list


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
    parser.add_argument(
        "--testset",
        required=True,
        type=comma_list,
        metavar="A,B",
        help="comma-separated test set names (see `qaconv datasets`) or Market-style folders",
    )
    parser.add_argument("--data-dir", default="data", metavar="DIR", help="folder of the data sets (default: data)")
    parser.add_argument(
        "--out", metavar="DIR", help="output folder (default: the run folder, or the checkpoint file's folder)"
    )
    parser.add_argument("--rerank", action="store_true", help="also report k-reciprocal re-ranking")
    parser.add_argument(
        "--tlift",
        action="store_true",
        help="also report TLift (test sets with time information only; after --rerank if given)",
    )
    parser.add_argument(
        "--save-scores", action="store_true", help="write <test>_score.npz and .mat (dense query x gallery scores)"
    )
    parser.add_argument(
        "--report",
        type=int,
        default=0,
        metavar="N",
        help="write an HTML + PNG report of the top-N ranked lists of the best/worst queries (0: none)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per feature-extraction batch (64)")
    parser.add_argument(
        "--workers", type=int, metavar="N", help="data loading processes (default: 4, at most the CPU count)"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="precision of the forward, the stored maps and the scoring (auto: float16 on CUDA, float32 elsewhere)",
    )
    parser.add_argument("--prob-block", type=int, default=256, help="query maps per score block (256)")
    parser.add_argument("--gal-block", type=int, default=4096, help="gallery maps per score block (4096)")
    parser.add_argument(
        "--rerank-dist",
        default="neg_score",
        choices=["neg_score", "sigmoid"],
        help="distance fed to re-ranking: -score (published code) or 1 - sigmoid(score / 10)",
    )
    parser.add_argument("--k1", type=int, default=20, help="re-ranking: k-reciprocal neighbours (20)")
    parser.add_argument("--k2", type=int, default=6, help="re-ranking: query-expansion neighbours (6)")
    parser.add_argument(
        "--lambda-value", type=float, default=0.3, help="re-ranking: weight of the original distance, 0..1 (0.3)"
    )
    parser.add_argument("--tau", type=float, default=100.0, help="TLift: co-occurrence window in seconds (100)")
    parser.add_argument("--sigma", type=float, default=200.0, help="TLift: time-difference scale in seconds (200)")
    parser.add_argument("--K", type=int, default=10, help="TLift: top-K retrievals that define the pivots (10)")
    parser.add_argument("--alpha", type=float, default=0.2, help="TLift: fusion regulariser (0.2)")
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="keep extracted feature maps here, keyed by the weights, input size, dtype and each image's path, "
        "size and modification time",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qaconv.device import resolve_device
    from qaconv.engine.checkpoint import load_model, resolve_checkpoint
    from qaconv.engine.evaluate import EvalOptions, run_evaluation

    # every EvalOptions field is a flag of the same name; a flag left out (None) keeps the field's default
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(EvalOptions)}
    options = EvalOptions(**{name: value for name, value in given.items() if value is not None})
    path = resolve_checkpoint(args.checkpoint)
    out = args.out or (args.checkpoint if os.path.isdir(args.checkpoint) else os.path.dirname(path))
    device = resolve_device(args.device)
    model, matcher, config = load_model(path, device)
    print(f"checkpoint: {path} ({config.arch}, {config.height}x{config.width}) on {device}")
    run_evaluation(model, matcher, config, args.testset, args.data_dir, out, options, device, source=str(path))
    return 0
