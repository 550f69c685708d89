"""The app as a real server: concurrent requests get the answers of sequential ones. The command `qaconv serve` is
tested in tests/commands/test_serve.py."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from qaconv.serve.app import create_app
from qaconv.serve.server import BackgroundServer


def test_concurrent_requests_get_the_answers_of_sequential_ones(service, query_images):
    queries = [*query_images[:3]] * 2
    with BackgroundServer(create_app(service)) as server, httpx2.Client(base_url=server.url, timeout=60) as client:

        def search(path: Path) -> dict:
            response = client.post("/api/search", files={"image": (path.name, path.read_bytes())}, data={"topk": 4})
            response.raise_for_status()
            return response.json()

        def match(answer: dict) -> bytes:
            params = {"query": answer["query"], "gallery": answer["hits"][0]["path"]}
            return client.get("/api/match", params=params).raise_for_status().content

        sequential = [search(q) for q in queries]
        pictures = [match(a) for a in sequential]
        with ThreadPoolExecutor(max_workers=6) as pool:
            concurrent = list(pool.map(search, queries))
            concurrent_pictures = list(pool.map(match, concurrent))
            health = list(pool.map(lambda _: client.get("/api/health").status_code, range(6)))
    for seq, con in zip(sequential, concurrent, strict=True):
        assert con["query"] == seq["query"]
        assert [h["path"] for h in con["hits"]] == [h["path"] for h in seq["hits"]]
        assert [h["score"] for h in con["hits"]] == pytest.approx([h["score"] for h in seq["hits"]], abs=1e-5)
    assert concurrent_pictures == pictures and health == [200] * 6
