"""`qaconv synth`: write a synthetic pedestrian data set in the Market-1501 layout."""

from __future__ import annotations

import argparse
import time

from qaconv.config import SYNTH_FLAGS, SynthConfig, add_flags, flag_names
from qaconv.config.flags import options_from
from qaconv.errors import QAConvError

SYNTH_NAMES = flag_names(SynthConfig, SYNTH_FLAGS)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="generate a synthetic multi-camera pedestrian data set (Market-1501 layout)",
        description="Draw synthetic people seen by several cameras and write them as Market-1501 "
        "(bounding_box_train/, bounding_box_test/, query/, meta.json). Styles A and B are two domains.",
    )
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    add_flags(parser, SynthConfig, SYNTH_NAMES)
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="rendering processes, 0: in this process (default: every usable CPU; the output does not depend on it)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a data set already in --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qaconv.data.synthetic import check_dataset_out, generate

    config = options_from(SynthConfig, args, SYNTH_NAMES)
    if args.workers is not None and args.workers < 0:
        raise QAConvError(f"--workers must be >= 0 (0: in this process), got {args.workers}")
    check_dataset_out(args.out, args.overwrite, "--out")
    start = time.perf_counter()
    meta = generate(args.out, config, workers=args.workers, overwrite=args.overwrite)
    seconds = time.perf_counter() - start
    counts = meta["counts"]
    total = sum(c["images"] for c in counts.values())
    print(
        f"wrote {total} images of {meta['num_ids']} ids, {meta['num_cams']} cameras, style {meta['style']}, "
        f"seed {meta['seed']} to {args.out} in {seconds:.1f} s"
    )
    for split, c in counts.items():
        extra = "".join(f", {c[k]} {k}" for k in ("distractors", "junk") if k in c)
        print(f"  {split:<19} {c['images']:>6} images  {c['ids']:>5} ids  {c['cameras']} cameras{extra}")
    return 0
