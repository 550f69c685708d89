"""Running the app with uvicorn: in the foreground (`qaconv serve`) or on a background thread (tests, benchmarks).

The socket is bound here, before uvicorn starts, so that a port in use is a clear QAConvError and
port 0 (any free port) gives a URL that can be printed.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from qaconv.errors import QAConvError


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one); a port in use is a QAConvError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise QAConvError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise QAConvError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None
    sock.listen(128)
    return sock


def url(sock: socket.socket) -> str:
    """The http:// address of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _server(app: FastAPI) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))


def serve_forever(app: FastAPI, sock: socket.socket) -> None:
    """Serve until interrupted (Ctrl+C)."""
    _server(app).run(sockets=[sock])


class BackgroundServer:
    """The app served on a daemon thread at `.url` while the `with` block runs (127.0.0.1, a free port)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0) -> None:
        self._sock = bind(host, port)
        self.url = url(self._sock)
        self._server = _server(app)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._timeout = timeout

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(self._timeout)
        self._sock.close()
