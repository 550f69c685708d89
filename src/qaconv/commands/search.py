"""`qaconv search`: rank gallery indexes (one, a shard set, or several) for query images with QAConv."""

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
        description="Rank the entries of indexes built by `qaconv index build` for query images and print the "
        "top-k: an index's location first stage finds the candidates when it has one, QAConv re-scores them "
        "(--first-stage none scores every entry). Shards are searched one by one and merged exactly. "
        "See docs/inference.md.",
    )
    parser.add_argument(
        "--index", required=True, nargs="+", action="extend", metavar="INDEX",
        help="index folder(s) or shard set(s), searched as one gallery",
    )  # fmt: skip
    parser.add_argument("--query", required=True, nargs="+", metavar="IMG", help="query image(s)")
    parser.add_argument(
        "--checkpoint", default=None, help="checkpoint file or run folder (default: the one recorded in the index)"
    )
    parser.add_argument("--html", metavar="FILE", help="write a page with the query and ranked gallery thumbnails")
    parser.add_argument("--json", metavar="FILE", help="write the ranked lists as JSON")
    add_flags(
        parser,
        SearchConfig,
        SEARCH_NAMES,
        only=("topk", "first_stage", "shortlist", "device", "batch_size", "max_image_pixels"),
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
    from qaconv.inference import ReID
    from qaconv.inference.shards import Gallery
    from qaconv.io import atomic_write_json, atomic_write_text, make_parent

    options = options_from(SearchConfig, args, SEARCH_NAMES)
    for option, path in (("--json", args.json), ("--html", args.html)):
        if path:
            make_parent(path, option)  # before any work
    gallery = Gallery.open(args.index)
    gallery.check_unchanged(args.if_changed)
    checkpoint = args.checkpoint or gallery.recorded_checkpoint()
    reid = ReID.from_checkpoint(checkpoint, device=options.device, batch_size=options.batch_size,
                                max_pixels=options.max_image_pixels)  # fmt: skip
    result = reid.search(args.query, gallery, topk=options.topk, shortlist=options.shortlist,
                         first_stage=options.first_stage)  # fmt: skip
    rows = _print_results(args.query, result.paths, result.scores.tolist())
    mode = gallery.search_mode(options.first_stage, options.shortlist)
    if args.json:
        atomic_write_json(args.json, {"index": gallery.describe(), "search": mode, "queries": rows})
        print(f"wrote {args.json}")
    if args.html:
        atomic_write_text(args.html, _page(rows, mode, gallery.describe()))
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
