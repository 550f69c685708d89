"""`qaconv serve`: a local web app over a gallery (an index or shards): search with a photo, see why the hits
match, browse and filter the gallery, export results, add images."""

from __future__ import annotations

import argparse
import contextlib
import secrets

from qaconv.config import InferenceConfig, add_flags, flag_names
from qaconv.config.flags import options_from

INFERENCE_NAMES = flag_names(InferenceConfig)

MISSING = "qaconv serve needs the optional packages fastapi, uvicorn and python-multipart: pip install 'qaconv[serve]'"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="a local web app: search a gallery index with a photo and see the correspondences",
        description="Serve a page (and its JSON API) that searches an index built by `qaconv index build` with "
        "an uploaded or gallery image and draws the local correspondences of any hit. Nothing is loaded from "
        "the internet. See docs/serve.md.",
    )
    parser.add_argument(
        "--index", required=True, nargs="+", action="extend", metavar="INDEX",
        help="index folder(s) or shard set(s) (qaconv index build), served as one gallery",
    )  # fmt: skip
    parser.add_argument("--checkpoint", required=True, help="checkpoint file or run folder the index was built with")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only; 0.0.0.0: every one)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (8000)")
    parser.add_argument(
        "--max-upload-mb", type=float, default=10.0, metavar="MB", help="largest query upload accepted, MiB (10)"
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name the server answers to besides its IP addresses and localhost (repeatable); requests "
        "for other names are refused (DNS rebinding)",
    )
    parser.add_argument(
        "--token",
        help="an access token every API request must carry (open the printed address, which includes it); "
        "'auto' makes a random one. Advised when --host is not a loopback address",
    )
    parser.add_argument(
        "--add-to",
        metavar="FOLDER",
        help="let the page add images to the gallery: they are written to FOLDER (inside the gallery folder the "
        "index was built from) and the index is updated (default: no additions)",
    )
    add_flags(parser, InferenceConfig, INFERENCE_NAMES, only=("device", "max_image_pixels"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qaconv.errors import QAConvError

    if not 0 <= args.port <= 65535:
        raise QAConvError(f"--port must be between 0 and 65535, got {args.port}")
    if args.max_upload_mb <= 0:
        raise QAConvError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    options = options_from(InferenceConfig, args, INFERENCE_NAMES)
    if args.token is not None and len(args.token) < 8 and args.token != "auto":
        raise QAConvError("--token must be at least 8 characters (or 'auto' for a random one)")
    try:
        from qaconv.serve.app import create_app
        from qaconv.serve.guard import is_loopback
        from qaconv.serve.server import bind, serve_forever, url
    except ImportError as exc:
        raise QAConvError(f"{MISSING} ({exc})") from None
    from qaconv.serve import GalleryService

    token = secrets.token_urlsafe(16) if args.token == "auto" else args.token
    service = GalleryService.open(
        args.index,
        args.checkpoint,
        device=options.device,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=options.max_image_pixels,
        add_to=args.add_to,
    )
    for shard in service.gallery.shards:
        changes = shard.changes()
        if changes:
            print(f"warning: {changes.describe(shard.root)}", flush=True)
    sock = bind(args.host, args.port)
    address = url(sock) + (f"?token={token}" if token else "")
    print(
        f"serving {service.gallery.describe()} ({len(service.gallery)} images) with {service.reid.checkpoint}\n"
        f"open {address} in a browser; Ctrl+C stops",
        flush=True,
    )
    if not is_loopback(args.host):
        print(
            f"warning: --host {args.host} lets other machines reach the gallery's images and its search"
            + ("" if token else "; anyone who can reach this port can use it: pass --token auto to require a token"),
            flush=True,
        )
    app = create_app(service, allowed_hosts=args.allowed_host, token=token)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn shuts down cleanly, then passes Ctrl+C on
        serve_forever(app, sock)
    print("stopped")
    return 0
