"""`qaconv serve` under a bounded load on loopback: concurrent searches and pictures, large and hostile uploads;
no request fails unexpectedly and the server's memory stays bounded (queries are reduced on arrival)."""

from __future__ import annotations

import io
import json
import os
import struct
import urllib.error
import urllib.request
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from qaconv.serve import GalleryService
from qaconv.serve.app import create_app
from qaconv.serve.server import BackgroundServer
from qaconv.serve.uploads import QueryStore

REQUESTS = 48
CONCURRENCY = 8
MEMORY_BOUND_MIB = 350


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def jpeg(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)  # smooth: a small file
    buffer = io.BytesIO()
    Image.fromarray(small).resize((width, height)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def png_bomb(side: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def post_image(url: str, name: str, data: bytes) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="topk"\r\n\r\n3\r\n--{boundary}--\r\n'.encode()
    )
    request = urllib.request.Request(url + "api/search", data=body, method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    return _send(request)


def _send(request: urllib.request.Request) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            body = response.read()
            return response.status, json.loads(
                body
            ) if response.headers.get_content_type() == "application/json" else {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def loaded_service(reid, index_dir):
    from qaconv.inference import GalleryIndex

    return GalleryService(reid, GalleryIndex.open(index_dir), max_upload_bytes=8 * 2**20, queries=QueryStore(64))


def test_concurrent_searches_large_and_hostile_uploads_keep_the_server_bounded(loaded_service):
    uploads = [("big.jpg", jpeg(4000, 3000, i)) for i in range(REQUESTS // 2)]  # 12 MP photos, each new
    uploads += [(f"q{i}.jpg", jpeg(256, 128, 100 + i)) for i in range(REQUESTS // 4)]
    uploads += [("bomb.png", png_bomb(20_000)) for _ in range(REQUESTS // 4)]  # 48 KB claiming 400 M pixels
    with BackgroundServer(create_app(loaded_service)) as server:
        post_image(server.url, "warm.jpg", jpeg(256, 128, 999))
        before = rss_mib()
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            answers = list(pool.map(lambda item: post_image(server.url, *item), uploads))
        grown = rss_mib() - before
        queries = [body["query"] for status, body in answers if status == 200]
        match = urllib.request.Request(server.url + f"api/match?query={queries[0]}&gallery=" + urllib.parse.quote(
            loaded_service.gallery.paths[0]))  # fmt: skip
        with urllib.request.urlopen(match, timeout=60) as response:
            assert response.status == 200 and response.headers["Content-Type"] == "image/png"
    statuses = [status for status, _ in answers]
    assert statuses == [200] * (3 * REQUESTS // 4) + [413] * (REQUESTS // 4), statuses
    assert all("pixels" in body["error"] for status, body in answers if status == 413)
    stored = loaded_service.queries._images.values()
    assert all(image.size == (32, 64) for image in stored)  # reduced to the model's input size on arrival
    assert grown < MEMORY_BOUND_MIB, f"the server grew by {grown:.0f} MiB under load"
