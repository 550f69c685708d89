"""`qaconv serve`: a local web app over a gallery index: search with a photo, see why the hits match."""

from __future__ import annotations

import argparse
import contextlib

MISSING = "qaconv serve needs the optional packages fastapi, uvicorn and python-multipart: pip install 'qaconv[serve]'"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="a local web app: search a gallery index with a photo and see the correspondences",
        description="Serve a page (and its JSON API) that searches an index built by `qaconv index build` with "
        "an uploaded or gallery image and draws the local correspondences of any hit. Nothing is loaded from "
        "the internet. See docs/serve.md.",
    )
    parser.add_argument("--index", required=True, metavar="INDEX", help="index folder (qaconv index build)")
    parser.add_argument("--checkpoint", required=True, help="checkpoint file or run folder the index was built with")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only; 0.0.0.0: every one)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (8000)")
    parser.add_argument(
        "--max-upload-mb", type=float, default=10.0, metavar="MB", help="largest query upload accepted, MiB (10)"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (auto)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qaconv.errors import QAConvError

    if not 0 <= args.port <= 65535:
        raise QAConvError(f"--port must be between 0 and 65535, got {args.port}")
    if args.max_upload_mb <= 0:
        raise QAConvError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    try:
        from qaconv.serve.app import create_app
        from qaconv.serve.server import bind, serve_forever, url
    except ImportError as exc:
        raise QAConvError(f"{MISSING} ({exc})") from None
    from qaconv.serve import GalleryService

    service = GalleryService.open(
        args.index, args.checkpoint, device=args.device, max_upload_bytes=int(args.max_upload_mb * 2**20)
    )
    sock = bind(args.host, args.port)
    print(
        f"serving {service.index.root} ({len(service.index)} images) with {service.reid.checkpoint}\n"
        f"open {url(sock)} in a browser; Ctrl+C stops",
        flush=True,
    )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: --host {args.host} makes the gallery's images visible to other machines", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn shuts down cleanly, then passes Ctrl+C on
        serve_forever(create_app(service), sock)
    print("stopped")
    return 0
