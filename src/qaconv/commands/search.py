"""`qaconv search`: rank a gallery index for query images with QAConv (exhaustive, or two-stage)."""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
from pathlib import Path
from typing import Any

THUMB_HEIGHT = 128


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
    parser.add_argument("--topk", type=int, default=20, help="results per query (20)")
    parser.add_argument(
        "--shortlist",
        type=int,
        default=None,
        metavar="N",
        help="two-stage search: re-score only the N nearest entries by global descriptor "
        "(default: exhaustive QAConv over the whole gallery)",
    )
    parser.add_argument(
        "--checkpoint", default=None, help="checkpoint file or run folder (default: the one recorded in the index)"
    )
    parser.add_argument("--html", metavar="FILE", help="write a page with the query and ranked gallery thumbnails")
    parser.add_argument("--json", metavar="FILE", help="write the ranked lists as JSON")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (auto)")
    parser.set_defaults(func=run)


def _checkpoint(args: argparse.Namespace, manifest: dict[str, Any]) -> str:
    from qaconv.errors import QAConvError

    if args.checkpoint:
        return args.checkpoint
    recorded = manifest.get("checkpoint")
    if not recorded or not Path(recorded).exists():
        raise QAConvError(f"index {args.index} records checkpoint {recorded}, which is not found; pass --checkpoint")
    return recorded


def run(args: argparse.Namespace) -> int:
    from qaconv.errors import QAConvError
    from qaconv.inference import GalleryIndex, ReID

    if args.topk < 1:
        raise QAConvError(f"--topk must be at least 1, got {args.topk}")
    index = GalleryIndex.open(args.index)
    reid = ReID.from_checkpoint(_checkpoint(args, index.manifest), device=args.device)
    result = reid.search(args.query, index, topk=args.topk, shortlist=args.shortlist)
    rows = []
    for query, paths, scores in zip(args.query, result.paths, result.scores.tolist(), strict=True):
        print(f"query {query}")
        for rank, (path, score) in enumerate(zip(paths, scores, strict=True), start=1):
            print(f"{rank:>5}  {score:>10.4f}  {path}")
        rows.append(
            {
                "query": str(Path(query).resolve()),
                "results": [
                    {"rank": r, "score": s, "path": p}
                    for r, (p, s) in enumerate(zip(paths, scores, strict=True), start=1)
                ],
            }
        )
    mode = "exhaustive" if args.shortlist is None else f"two-stage (shortlist {args.shortlist})"
    if args.json:
        _write(args.json, "--json", json.dumps({"index": str(index.root), "search": mode, "queries": rows}, indent=2))
    if args.html:
        _write(args.html, "--html", _page(rows, mode, str(index.root)))
    return 0


def _write(path: str, option: str, text: str) -> None:
    from qaconv.errors import QAConvError

    try:
        Path(path).write_text(text + "\n")
    except OSError as exc:
        raise QAConvError(f"{option} {path}: cannot write ({exc.strerror or exc})") from None
    print(f"wrote {path}")


def _thumbnail(path: str) -> str:
    """An <img> with the image inlined as a small JPEG (the page stays valid if the gallery moves)."""
    from qaconv.data.loader import load_image
    from qaconv.errors import QAConvError

    try:
        image = load_image(path)
    except QAConvError:
        return '<div class="missing">image not found</div>'
    width = max(1, round(image.width * THUMB_HEIGHT / image.height))
    buffer = io.BytesIO()
    image.resize((width, THUMB_HEIGHT)).save(buffer, format="JPEG", quality=85)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img src="data:image/jpeg;base64,{data}" title="{html.escape(path)}">'


def _page(rows: list[dict[str, Any]], mode: str, index: str) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>qaconv search</title><style>"
        "body{font-family:sans-serif} .row{display:flex;gap:6px;margin:12px 0;align-items:flex-start}"
        ".cell{text-align:center;font-size:11px;max-width:90px;overflow-wrap:anywhere} .query{border:3px solid #36c}"
        ".missing{width:64px;height:128px;background:#eee}</style></head><body>",
        f"<h2>qaconv search</h2><p>index {html.escape(index)}, {html.escape(mode)}</p>",
    ]
    for row in rows:
        parts.append('<div class="row">')
        parts.append(f'<div class="cell query">{_thumbnail(row["query"])}<br>query</div>')
        for hit in row["results"]:
            name = html.escape(Path(hit["path"]).name)
            parts.append(
                f'<div class="cell">{_thumbnail(hit["path"])}<br>#{hit["rank"]} {hit["score"]:.2f}<br>{name}</div>'
            )
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)
