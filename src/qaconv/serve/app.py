"""The FastAPI application: the page at `/`, its static files, and the JSON API it uses (docs/serve.md).

    GET  /api/health                        gallery and model summary, the browsing filters' values
    GET  /api/gallery?offset=0&limit=60[&camera=C&pid=P&folder=F]   a page of the gallery's images
    GET  /api/image?path=PATH               one of the gallery's images (thumbnails)
    POST /api/search  image=FILE topk=10 [shortlist=N first_stage=auto|none|descriptors]
                                            -> {"query": ID, "hits": [...], ...}
    GET  /api/evaluate?query=ID             a labelled query's rank of the first true match and AP
    GET  /api/export?query=ID&format=csv|json|html   a search's results as a file
    POST /api/gallery  images=FILE...       add images to the gallery (qaconv serve --add-to) and update the index
    GET  /api/match?query=ID&gallery=PATH   correspondence picture (PNG), score in X-QAConv-Score

Every refusal is `{"error": message}` with a 4xx status. Endpoints are plain functions, so FastAPI
runs them in its thread pool and a long search does not hold up other requests. Every request passes the
guard of qaconv.serve.guard first (Host, Origin, the access token, security headers).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qaconv.errors import QAConvError
from qaconv.serve.errors import RequestError
from qaconv.serve.guard import RequestGuard
from qaconv.serve.service import GalleryService
from qaconv.serve.uploads import upload_limit_message
from qaconv.version import __version__

STATIC = Path(__file__).resolve().parent / "static"
# Multipart boundaries and the small form fields that come with an upload.
FORM_OVERHEAD = 64 * 1024
# The page loads nothing from anywhere but this server (it works offline, and no CDN sees its users).
PAGE_POLICY = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'"


def create_app(service: GalleryService, *, allowed_hosts: Iterable[str] = (), token: str | None = None) -> FastAPI:
    """The web app over one GalleryService (see qaconv.serve.service), behind the request guard
    (qaconv.serve.guard: Host names besides IP addresses and localhost, and the access token, None for none)."""
    app = FastAPI(title="qaconv serve", version=__version__, docs_url=None, redoc_url=None)
    app.state.service = service
    app.add_middleware(BodyLimit, limit=service.max_upload_bytes + FORM_OVERHEAD)
    app.add_middleware(RequestGuard, allowed_hosts=tuple(allowed_hosts), token=token)  # outermost: runs first
    _add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/api/health")
    def health() -> dict:
        return service.summary()

    @app.get("/api/gallery")
    def gallery(
        offset: int = 0, limit: int = 60, camera: int | None = None, pid: int | None = None, folder: str | None = None
    ) -> dict:
        return service.browse(offset, limit, camera=camera, pid=pid, folder=folder)

    @app.post("/api/gallery")
    def add(images: Annotated[list[UploadFile], File()]) -> dict:
        return service.add_images([(image.filename or "upload", image.file.read()) for image in images])

    @app.get("/api/image")
    def image(path: Annotated[str, Query()]) -> FileResponse:
        return FileResponse(service.image_path(path))

    @app.post("/api/search")
    def search(
        image: Annotated[UploadFile, File()],
        topk: Annotated[int, Form()] = 10,
        shortlist: Annotated[int | None, Form()] = None,
        first_stage: Annotated[str, Form()] = "auto",
    ) -> dict:
        return service.search(image.file.read(), image.filename or "the upload", topk, shortlist, first_stage)

    @app.get("/api/evaluate")
    def evaluate(query: Annotated[str, Query()]) -> dict:
        return service.evaluate(query)

    @app.get("/api/export", response_class=Response)
    def export(query: Annotated[str, Query()], format: Annotated[str, Query()] = "csv") -> Response:  # noqa: A002
        data, media_type, name = service.export(query, format)
        return Response(data, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/api/match", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def match(query: Annotated[str, Query()], gallery: Annotated[str, Query()]) -> Response:
        png, score = service.match(query, gallery)
        return Response(png, media_type="image/png", headers={"X-QAConv-Score": f"{score:.6f}"})

    return app


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal as {"error": message}: the server's own (RequestError), the library's, FastAPI's."""

    @app.exception_handler(QAConvError)
    def library_error(request: Request, exc: QAConvError) -> JSONResponse:
        return _error(exc.status if isinstance(exc, RequestError) else 400, str(exc))

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(x) for x in e['loc'][1:]) or 'request'}: {e['msg']}" for e in exc.errors()]
        return _error(422, "; ".join(problems))

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, by Content-Length before reading, else while reading."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await _error(413, upload_limit_message(self.limit - FORM_OVERHEAD))(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, upload_limit_message(self.limit - FORM_OVERHEAD))
            return message

        await self.app(scope, limited_receive, send)
