"""`qaconv synth`: write a synthetic pedestrian data set in the Market-1501 layout."""

from __future__ import annotations

import argparse
import time

from qaconv.errors import QAConvError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="generate a synthetic multi-camera pedestrian data set (Market-1501 layout)",
        description="Draw synthetic people seen by several cameras and write them as Market-1501 "
        "(bounding_box_train/, bounding_box_test/, query/, meta.json). Styles A and B are two domains.",
    )
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--ids", type=int, default=100, help="number of identities, half train, half test (100)")
    parser.add_argument("--cams", type=int, default=6, help="number of cameras, 2..9 (6)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same bytes (0)")
    parser.add_argument("--style", default="A", choices=["A", "B", "a", "b"], help="domain: A or B (A)")
    parser.add_argument("--images-per-id", type=int, default=10, help="mean images per identity, >= 4 (10)")
    parser.add_argument("--height", type=int, default=128, help="image height in pixels (128)")
    parser.add_argument("--width", type=int, default=64, help="image width in pixels (64)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (90)")
    parser.add_argument("--junk-fraction", type=float, default=0.1, help="junk images (pid -1) per gallery image (0.1)")
    parser.add_argument(
        "--distractor-fraction", type=float, default=0.1, help="distractor images (pid 0000) per gallery image (0.1)"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="processes, 0 = all CPUs; the output does not depend on it (0)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a data set already in --out")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qaconv.data.synthetic import SynthConfig, check_dataset_out, generate

    config = SynthConfig(
        num_ids=args.ids,
        num_cams=args.cams,
        seed=args.seed,
        style=args.style,
        images_per_id=args.images_per_id,
        height=args.height,
        width=args.width,
        quality=args.quality,
        junk_fraction=args.junk_fraction,
        distractor_fraction=args.distractor_fraction,
    )
    if args.workers < 0:
        raise QAConvError(f"--workers must be >= 0 (0 = all CPUs), got {args.workers}")
    check_dataset_out(args.out, args.overwrite, "--out")
    start = time.perf_counter()
    meta = generate(args.out, config=config, workers=args.workers, overwrite=args.overwrite)
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
