"""`qaconv match`: score two images with QAConv and draw the local correspondences that explain the score."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from qaconv.config import InferenceConfig, add_flags, flag_names
from qaconv.config.flags import options_from

INFERENCE_NAMES = flag_names(InferenceConfig)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "match",
        help="score two images and draw their strongest local correspondences",
        description="Print the QAConv score of IMG_A (query) and IMG_B (gallery). With --out, draw both images "
        "side by side at the model's input size, with a line from each query location to its best-matching "
        "gallery location for the strongest contributions, coloured by contribution. See docs/inference.md.",
    )
    parser.add_argument("image_a", metavar="IMG_A", help="query image")
    parser.add_argument("image_b", metavar="IMG_B", help="gallery image")
    parser.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    parser.add_argument("--out", help="picture to write (.png, .jpg, ...)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="draw only contributions >= T (default: no threshold, the --max-lines strongest)",
    )
    parser.add_argument("--max-lines", type=int, default=30, help="draw at most N lines (30)")
    parser.add_argument(
        "--json",
        metavar="FILE",
        help="write the score and every location's best match and contribution, both directions, as JSON",
    )
    add_flags(parser, InferenceConfig, INFERENCE_NAMES, only=("device", "max_image_pixels"))
    parser.set_defaults(func=run)


def _check(args: argparse.Namespace) -> str | None:
    """Refuse bad options and create the output folders before any work; returns the picture's PIL format."""
    from PIL import Image

    from qaconv.errors import QAConvError
    from qaconv.io import make_parent

    if args.max_lines < 0:
        raise QAConvError(f"--max-lines must be >= 0, got {args.max_lines}")
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise QAConvError(f"--threshold must be a finite number, got {args.threshold}")
    if args.json:
        make_parent(args.json, "--json")
    if not args.out:
        return None
    picture_format = Image.registered_extensions().get(Path(args.out).suffix.lower())
    if picture_format is None:
        raise QAConvError(f"--out {args.out}: unknown file extension (use .png, .jpg, ...)")
    make_parent(args.out, "--out")
    return picture_format


def run(args: argparse.Namespace) -> int:
    from qaconv.inference import ReID
    from qaconv.io import atomic_write, atomic_write_json

    picture_format = _check(args)
    options = options_from(InferenceConfig, args, INFERENCE_NAMES)
    reid = ReID.from_checkpoint(args.checkpoint, device=options.device, max_pixels=options.max_image_pixels)
    match = reid.match(args.image_a, args.image_b)
    print(f"score: {match.score:.4f}")
    if args.out:
        picture = match.plot(threshold=args.threshold, max_lines=args.max_lines)
        atomic_write(args.out, lambda f: picture.save(f, format=picture_format))
        print(f"wrote {args.out}")
    if args.json:
        record = {
            "query": str(Path(args.image_a).resolve()),
            "gallery": str(Path(args.image_b).resolve()),
            "checkpoint": str(reid.checkpoint),
            **match.to_dict(),
        }
        atomic_write_json(args.json, record)
        print(f"wrote {args.json}")
    return 0
