"""`qaconv serve`: a local web app to search a gallery index and see why two people match (docs/serve.md).

    service = GalleryService.open("gallery.idx", "runs/market")   # model + index, no HTTP (service.py)
    app = create_app(service)                                     # FastAPI app (app.py, needs qaconv[serve])
    with BackgroundServer(app) as server: ...                      # uvicorn on a thread (server.py)

The page (static/) uses only the JSON API of app.py. Only this module and service.py, uploads.py
and errors.py import without the optional packages, so `serve_commands` works everywhere.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from qaconv.serve.service import GalleryService

__all__ = ["GalleryService", "serve_commands"]


def serve_commands(
    checkpoint: str | os.PathLike, gallery: str | os.PathLike, index: str | os.PathLike | None = None
) -> list[str]:
    """The shell commands that index a gallery folder and serve it (index defaults to CHECKPOINT/gallery.idx)."""
    index = Path(checkpoint) / "gallery.idx" if index is None else Path(index)
    q = shlex.quote
    return [
        f"qaconv index build --gallery {q(str(gallery))} --checkpoint {q(str(checkpoint))} --out {q(str(index))} "
        "--overwrite",
        f"qaconv serve --index {q(str(index))} --checkpoint {q(str(checkpoint))}",
    ]
