"""The JSON API of `qaconv serve` through FastAPI's test client: answers equal the in-process calls; refusals."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from qaconv.errors import QAConvError
from qaconv.inference import GalleryIndex, ReID
from qaconv.serve import GalleryService
from qaconv.serve.app import STATIC, create_app
from qaconv.serve.service import identity

LOCAL = "http://127.0.0.1:8000"  # the server addressed by its IP, as a browser on this machine does


@pytest.fixture(scope="module")
def client(service) -> TestClient:
    return TestClient(create_app(service), base_url=LOCAL)


def upload(client: TestClient, path: Path, **form) -> dict:
    response = client.post("/api/search", files={"image": (path.name, path.read_bytes())}, data=form)
    assert response.status_code == 200, response.text
    return response.json()


def refused(response, status: int, *words: str) -> str:
    """The error message of a refusal, checked for its status and the words it must name."""
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert all(w in message for w in words), message
    return message


def test_health_summarises_index_and_model(client, service, index_dir, reid):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["fingerprint_match"] is True
    assert health["index"]["images"] == len(service.index) and health["index"]["path"] == str(index_dir)
    assert health["index"]["shortlist"] is True and health["index"]["fingerprint"] == reid.fingerprint
    assert health["model"]["checkpoint"] == str(reid.checkpoint) and health["model"]["input_size"] == [64, 32]
    assert health["max_upload_bytes"] == 256 * 1024


def test_page_and_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "style.css"):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and asset.text == (STATIC / name).read_text()
    # nothing from the internet: no absolute URL in the page or its assets
    for text in (page.text, *(p.read_text() for p in STATIC.iterdir())):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_search_returns_the_in_process_ranking(client, service, reid, query_images):
    query = query_images[0]
    answer = upload(client, query, topk=5)
    expected = reid.search(query, service.index, topk=5)
    assert answer["query"] == hashlib.sha256(query.read_bytes()).hexdigest()[:16]
    assert (answer["pid"], answer["camid"]) == identity(query.name) != (None, None)
    assert [h["path"] for h in answer["hits"]] == expected.paths[0]
    assert [h["score"] for h in answer["hits"]] == pytest.approx(expected.scores[0].tolist(), abs=1e-5)
    for hit in answer["hits"]:
        assert set(hit) == {"path", "score", "pid", "camid"}
        pid, cam = Path(hit["path"]).name.split("_")[:2]
        assert (hit["pid"], hit["camid"]) == (int(pid), int(cam[1]))
    assert answer["search"] == "exhaustive"
    renamed = client.post("/api/search", files={"image": ("photo.jpg", query.read_bytes())}).json()
    assert renamed["query"] == answer["query"] and renamed["pid"] is None and renamed["camid"] is None


def test_two_stage_search_when_asked(client, service, reid, query_images):
    full = upload(client, query_images[1], topk=4, shortlist=len(service.index))
    assert full["search"] == f"two-stage (shortlist {len(service.index)})"
    assert full["hits"] == upload(client, query_images[1], topk=4)["hits"]
    few = upload(client, query_images[1], topk=2, shortlist=3)
    expected = reid.search(query_images[1], service.index, topk=2, shortlist=3)
    assert [h["path"] for h in few["hits"]] == expected.paths[0]
    files = {"image": ("q.jpg", query_images[1].read_bytes())}
    response = client.post("/api/search", files=files, data={"topk": 5, "shortlist": 2})
    refused(response, 400, "shortlist (2)", "topk (5)")


def test_match_is_the_picture_of_qaconv_match(client, service, reid, query_images):
    answer = upload(client, query_images[0], topk=3)
    hit = answer["hits"][1]["path"]
    response = client.get("/api/match", params={"query": answer["query"], "gallery": hit})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    expected = reid.match(query_images[0], hit)
    assert float(response.headers["x-qaconv-score"]) == pytest.approx(expected.score, abs=1e-4)
    assert float(response.headers["x-qaconv-score"]) == pytest.approx(answer["hits"][1]["score"], abs=1e-2)
    picture = Image.open(io.BytesIO(response.content))
    assert picture.format == "PNG" and picture.size == expected.plot().size


def test_gallery_pages_and_images_are_the_index_only(client, service):
    page = client.get("/api/gallery", params={"offset": 2, "limit": 3}).json()
    assert page["total"] == len(service.index) and page["offset"] == 2
    assert [item["path"] for item in page["items"]] == service.index.paths[2:5]
    assert page["items"][0]["pid"] == identity(service.index.paths[2])[0]
    path = service.index.paths[0]
    image = client.get("/api/image", params={"path": path})
    assert image.status_code == 200 and image.content == Path(path).read_bytes()
    refused(client.get("/api/gallery", params={"limit": 0}), 400, "limit")


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "gallery.idx/manifest.json", "{first}/../../query/{name}", "{root}/manifest.json", ""],
)
def test_no_file_beyond_the_index_images_is_served(client, service, path):
    first = service.index.paths[0]
    path = path.format(first=first, name=Path(first).name, root=service.index.root)
    refused(client.get("/api/image", params={"path": path}), 404, "is not an image of the index")
    answer = upload(client, Path(first), topk=1)
    refused(client.get("/api/match", params={"query": answer["query"], "gallery": path}), 404, "not an image")
    assert client.get("/api/health").status_code == 200


def test_bad_uploads_are_refused_and_the_server_keeps_running(client, query_images, tmp_path):
    def post(name: str, data: bytes, **form):
        return client.post("/api/search", files={"image": (name, data)}, data=form)

    refused(post("notes.txt", b"this is not an image"), 400, "notes.txt", "not an image")
    refused(post("cut.jpg", query_images[0].read_bytes()[:200]), 400, "cannot read image cut.jpg")
    refused(post("empty.jpg", b""), 400, "empty.jpg", "empty")
    # over the limit (256 KiB): refused by Content-Length before reading, or by the part's size within the slack
    refused(post("big.png", b"\0" * (400 * 1024)), 413, "limit of 0.25 MiB")
    refused(post("big.png", b"\0" * (300 * 1024)), 413, "big.png", "limit of 0.25 MiB")
    refused(post("q.jpg", query_images[0].read_bytes(), topk=0), 400, "topk")
    refused(post("q.jpg", query_images[0].read_bytes(), topk="many"), 422, "topk")
    refused(client.post("/api/search", data={"topk": 3}), 422, "image")
    refused(client.get("/api/match", params={"query": "0" * 16, "gallery": "x"}), 404, "unknown query")
    refused(client.get("/api/match"), 422, "query", "gallery")
    refused(client.get("/api/nothing"), 404, "Not Found")
    assert client.get("/api/health").status_code == 200
    assert len(upload(client, query_images[0], topk=2)["hits"]) == 2


def test_an_upload_without_content_length_is_cut_at_the_limit(client):
    def chunks():
        yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        for _ in range(40):
            yield b"\0" * 16384

    response = client.post("/api/search", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    refused(response, 413, "limit")


def test_a_model_other_than_the_index_one_is_refused(index_dir, other_checkpoint, query_images):
    with pytest.raises(QAConvError, match="another checkpoint"):
        GalleryService.open(index_dir, other_checkpoint, device="cpu")
    other = GalleryService(ReID.from_checkpoint(other_checkpoint, device="cpu"), GalleryIndex.open(index_dir))
    client = TestClient(create_app(other), base_url=LOCAL)
    assert client.get("/api/health").json()["fingerprint_match"] is False
    response = client.post("/api/search", files={"image": ("q.jpg", query_images[0].read_bytes())})
    refused(response, 409, "another checkpoint", "fingerprints differ")
    assert client.get("/api/health").status_code == 200
