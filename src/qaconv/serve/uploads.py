"""Uploaded query images: decoding with a size limit, and a small store that gives each one an ID.

The page searches with an uploaded image, then asks for the correspondence picture of the query and
one hit; the store keeps the last `capacity` decoded queries under the ID that the search returned
(the start of the sha256 of the file's bytes, so uploading the same file twice gives the same ID).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from PIL import Image

from qaconv.errors import QAConvError
from qaconv.image_reader import DEFAULT_MAX_PIXELS, TooManyPixels, UnreadableImage, read_image
from qaconv.serve.errors import NotFound, RequestError, TooLarge

DEFAULT_MAX_UPLOAD_BYTES = 10 * 2**20
QUERY_ID_LENGTH = 16


def upload_limit_message(limit: int) -> str:
    return f"the upload is larger than the server's limit of {limit / 2**20:g} MiB (qaconv serve --max-upload-mb)"


def decode_upload(
    data: bytes, name: str, limit: int, max_pixels: int = DEFAULT_MAX_PIXELS, for_size: int | None = None
) -> Image.Image:
    """The uploaded bytes as an upright RGB image, read as every image is (`qaconv.image_reader.read_image`, for
    a model whose longest input side is `for_size`); an empty, oversized or non-image file, or one with more than
    `max_pixels`, is a RequestError naming it."""
    if len(data) > limit:
        raise TooLarge(f"{name}: {upload_limit_message(limit)}")
    if not data:
        raise RequestError(f"{name}: the uploaded file is empty")
    try:
        return read_image(data, max_pixels=max_pixels, name=name, for_size=for_size)
    except TooManyPixels as exc:
        raise TooLarge(str(exc)) from None
    except UnreadableImage as exc:
        raise RequestError(str(exc)) from None


def query_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:QUERY_ID_LENGTH]


class QueryStore:
    """The last `capacity` query images by ID (least recently used goes first); safe across threads."""

    def __init__(self, capacity: int = 64) -> None:
        if capacity < 1:
            raise QAConvError(f"the query store needs a capacity of at least 1, got {capacity}")
        self.capacity = capacity
        self._images: OrderedDict[str, Image.Image] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._images)

    def put(self, key: str, image: Image.Image) -> None:
        with self._lock:
            self._images[key] = image
            self._images.move_to_end(key)
            while len(self._images) > self.capacity:
                self._images.popitem(last=False)

    def get(self, key: str) -> Image.Image:
        with self._lock:
            if key not in self._images:
                raise NotFound(
                    f"unknown query {key!r}: it is not one this server returned, or an older one it has "
                    f"forgotten (it keeps the last {self.capacity}); search with the image again"
                )
            self._images.move_to_end(key)
            return self._images[key]
