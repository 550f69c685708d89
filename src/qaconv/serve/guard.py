"""What keeps the web app safe on a hostile network, as one ASGI middleware in front of every route.

- **Host**: a request must be addressed to this server: an IP address, `localhost`, or a name given with
  `qaconv serve --allowed-host`. A page of another site whose name an attacker points at 127.0.0.1 (DNS
  rebinding) sends its own name as Host and is refused, so it can read neither the gallery nor the paths.
- **Origin**: a request that costs work or changes state (a search, a correspondence picture) made by a page
  of another origin is refused: its `Origin` header differs from the Host it was sent to, or its
  `Sec-Fetch-Site` says cross-site. The app's own page and clients that are not browsers (no such headers)
  pass.
- **Token** (`qaconv serve --token`): every `/api/` request must carry it, in the `X-QAConv-Token` header or the
  cookie that the page sets when opened with `?token=...`.
- **Headers** on every answer: no content sniffing, no framing by other pages, no referrer, resources for
  this origin only.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_HEADER = "x-qaconv-token"
TOKEN_COOKIE = "qaconv_token"
COSTLY = ("/api/search", "/api/match")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def hostname(netloc: str) -> str:
    """The host part of `host[:port]` (IPv6 literals keep no brackets), lower-case."""
    host = urlsplit(f"//{netloc}").hostname
    return (host or "").lower()


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or name given to --host) only listens on this machine."""
    if host.lower() == "localhost":
        return True
    return is_ip(host) and ipaddress.ip_address(host).is_loopback


class RequestGuard:
    """The checks of the module's docstring around `app`; `allowed_hosts` are names besides IP addresses and
    localhost, `token` None for none."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = (), token: str | None = None) -> None:
        self.app = app
        self.names = {"localhost", *(name.lower() for name in allowed_hosts)}
        self.token = token

    def allowed_host(self, netloc: str) -> bool:
        host = hostname(netloc)
        return bool(host) and (is_ip(host) or host in self.names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            status, message = refusal
            await _with_headers(JSONResponse({"error": message}, status_code=status))(scope, receive, send)
            return
        cookie = self._token_from_query(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
                if cookie:
                    value = f"{TOKEN_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict"
                    message["headers"].append((b"set-cookie", value.encode()))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def refusal(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        """(status, reason) when the request must be refused, else None."""
        host = headers.get("host", "")
        if not self.allowed_host(host):
            return 421, (
                f"this server does not answer to the host name {hostname(host) or '(none)'!r}; open it by its "
                "address, or start it with --allowed-host NAME"
            )
        path = scope["path"]
        costly = scope["method"] not in ("GET", "HEAD", "OPTIONS") or path in COSTLY
        if costly and self._other_origin(headers):
            return 403, "requests from pages of other sites are refused (open the app from this server's own address)"
        if self.token is not None and path.startswith("/api/") and not self._has_token(headers):
            return 401, "this server needs its access token: open the address that qaconv serve printed (with ?token=)"
        return None

    @staticmethod
    def _other_origin(headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc != headers.get("host", "")):
            return True
        return headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")

    def _has_token(self, headers: Headers) -> bool:
        given = headers.get(TOKEN_HEADER) or _cookie(headers.get("cookie", ""), TOKEN_COOKIE) or ""
        return hmac.compare_digest(given.encode(), (self.token or "").encode())

    def _token_from_query(self, scope: Scope) -> str | None:
        """The token of a request for the page with a right ?token=..., to be kept in a cookie."""
        if self.token is None or scope["path"] != "/":
            return None
        given = parse_qs(scope.get("query_string", b"").decode()).get("token", [""])[0]
        return given if hmac.compare_digest(given.encode(), self.token.encode()) else None


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _with_headers(response: JSONResponse) -> JSONResponse:
    for key, value in SECURITY_HEADERS:
        response.headers[key.decode()] = value.decode()
    return response
