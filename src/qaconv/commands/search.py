"""`qaconv search`: rank a gallery index for query images with QAConv (exhaustive, or two-stage)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qaconv.config import SearchConfig, add_flags, flag_names
from qaconv.config.flags import options_from

SEARCH_NAMES = flag_names(SearchConfig)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="rank the images of a gallery index for query images",
        description="Score query images against every entry of an index built by `qaconv index build` "
        "(or, with --shortlist N, only the N nearest by global descriptor) and print the top-k. "
        "See docs/inference.md.",
    )
    parser.add_argument("--index", required=True, metavar="INDEX", help="index folder")
    parser.add_argument("--query", required=True, nargs="+", metavar="IMG", help="query image(s)")
    parser.add_argument(
        "--checkpoint", default=None, help="checkpoint file or run folder (default: the one recorded in the index)"
    )
    parser.add_argument("--html", metavar="FILE", help="write a page with the query and ranked gallery thumbnails")
    parser.add_argument("--json", metavar="FILE", help="write the ranked lists as JSON")
    add_flags(
        parser, SearchConfig, SEARCH_NAMES, only=("topk", "shortlist", "device", "batch_size", "max_image_pixels")
    )
    parser.add_argument(
        "--if-changed",
        choices=("warn", "refuse"),
        default="warn",
        help="when images of the index changed on disk since they were indexed: warn and search (default), or "
        "refuse (qaconv index update brings the index up to date)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qaconv.inference import GalleryIndex, ReID
    from qaconv.io import atomic_write_json, atomic_write_text, make_parent

    options = options_from(SearchConfig, args, SEARCH_NAMES)
    for option, path in (("--json", args.json), ("--html", args.html)):
        if path:
            make_parent(path, option)  # before any work
    index = GalleryIndex.open(args.index)
    index.check_unchanged(args.if_changed)
    checkpoint = args.checkpoint or index.recorded_checkpoint()
    reid = ReID.from_checkpoint(checkpoint, device=options.device, batch_size=options.batch_size,
                                max_pixels=options.max_image_pixels)  # fmt: skip
    result = reid.search(args.query, index, topk=options.topk, shortlist=options.shortlist)
    rows = _print_results(args.query, result.paths, result.scores.tolist())
    mode = "exhaustive" if options.shortlist is None else f"two-stage (shortlist {options.shortlist})"
    if args.json:
        atomic_write_json(args.json, {"index": str(index.root), "search": mode, "queries": rows})
        print(f"wrote {args.json}")
    if args.html:
        atomic_write_text(args.html, _page(rows, mode, str(index.root)))
        print(f"wrote {args.html}")
    return 0


def _print_results(queries: list[str], paths: list[list[str]], scores: list[list[float]]) -> list[dict[str, Any]]:
    """Print each query's ranked list; return the JSON rows."""
    rows = []
    for query, ranked, values in zip(queries, paths, scores, strict=True):
        print(f"query {query}")
        results = [{"rank": r, "score": s, "path": p} for r, (p, s) in enumerate(zip(ranked, values, strict=True), 1)]
        for hit in results:
            print(f"{hit['rank']:>5}  {hit['score']:>10.4f}  {hit['path']}")
        rows.append({"query": str(Path(query).resolve()), "results": results})
    return rows


def _page(rows: list[dict[str, Any]], mode: str, index: str) -> str:
    """The --html page: a row per query, the query framed, then its ranked gallery images."""
    from qaconv.viz.ranked_lists import BLUE
    from qaconv.viz.thumbnail_page import Thumb, ThumbRow, thumbnail_page

    page_rows = [
        ThumbRow(
            "",
            [Thumb(row["query"], ["query"], BLUE)]
            + [Thumb(h["path"], [f"#{h['rank']} {h['score']:.2f}", Path(h["path"]).name]) for h in row["results"]],
        )
        for row in rows
    ]
    return thumbnail_page("qaconv search", [("", page_rows)], intro=f"index {index}, {mode}")
