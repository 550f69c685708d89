"""`qaconv match`: score two images with QAConv and draw the local correspondences that explain the score."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


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
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (auto)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qaconv.errors import QAConvError
    from qaconv.inference import ReID

    if args.max_lines < 0:
        raise QAConvError(f"--max-lines must be >= 0, got {args.max_lines}")
    reid = ReID.from_checkpoint(args.checkpoint, device=args.device)
    match = reid.match(args.image_a, args.image_b)
    print(f"score: {match.score:.4f}")
    if args.out:
        picture = match.plot(threshold=args.threshold, max_lines=args.max_lines)
        try:
            picture.save(args.out)
        except (ValueError, OSError) as exc:
            raise QAConvError(f"--out {args.out}: cannot write the picture ({exc})") from None
        print(f"wrote {args.out}")
    if args.json:
        record = {
            "query": str(Path(args.image_a).resolve()),
            "gallery": str(Path(args.image_b).resolve()),
            "checkpoint": str(reid.checkpoint),
            **match.to_dict(),
        }
        try:
            Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
        except OSError as exc:
            raise QAConvError(f"--json {args.json}: cannot write ({exc.strerror or exc})") from None
        print(f"wrote {args.json}")
    return 0
