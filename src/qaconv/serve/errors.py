"""Requests the server refuses: each error carries the HTTP status its JSON answer gets."""

from __future__ import annotations

from qaconv.errors import QAConvError


class RequestError(QAConvError):
    """A bad request: its message goes back as `{"error": message}` with the HTTP `status`."""

    status = 400


class NotFound(RequestError):
    """An unknown query ID, or a path that is not an image of the index."""

    status = 404


class Conflict(RequestError):
    """The model cannot serve this index: its fingerprint differs from the one the index was built with."""

    status = 409


class TooLarge(RequestError):
    """An upload over the server's limit, or an image with too many pixels to decode."""

    status = 413
