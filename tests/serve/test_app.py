"""The JSON API of `qaconv serve` through FastAPI's test client: answers equal the in-process calls; refusals."""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
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
    assert health["index"]["images"] == len(service.gallery) and health["index"]["path"] == str(index_dir)
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
    expected = reid.search(query, service.gallery, topk=5)
    assert answer["query"] == hashlib.sha256(query.read_bytes()).hexdigest()[:16]
    assert (answer["pid"], answer["camid"]) == identity(query.name) != (None, None)
    assert [h["path"] for h in answer["hits"]] == expected.paths[0]
    assert [h["score"] for h in answer["hits"]] == pytest.approx(expected.scores[0].tolist(), abs=1e-5)
    for hit in answer["hits"]:
        assert set(hit) == {"path", "score", "pid", "camid", "folder"}
        pid, cam = Path(hit["path"]).name.split("_")[:2]
        assert (hit["pid"], hit["camid"]) == (int(pid), int(cam[1]))
    assert answer["search"] == "exhaustive"
    renamed = client.post("/api/search", files={"image": ("photo.jpg", query.read_bytes())}).json()
    assert renamed["query"] == answer["query"] and renamed["pid"] is None and renamed["camid"] is None


def test_two_stage_search_when_asked(client, service, reid, query_images):
    full = upload(client, query_images[1], topk=4, shortlist=len(service.gallery))
    assert full["search"] == f"two-stage (shortlist {len(service.gallery)})"
    assert full["hits"] == upload(client, query_images[1], topk=4)["hits"]
    few = upload(client, query_images[1], topk=2, shortlist=3)
    expected = reid.search(query_images[1], service.gallery, topk=2, shortlist=3)
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
    assert page["total"] == len(service.gallery) and page["offset"] == 2
    assert [item["path"] for item in page["items"]] == service.gallery.paths[2:5]
    assert page["items"][0]["pid"] == identity(service.gallery.paths[2])[0]
    path = service.gallery.paths[0]
    image = client.get("/api/image", params={"path": path})
    assert image.status_code == 200 and image.content == Path(path).read_bytes()
    refused(client.get("/api/gallery", params={"limit": 0}), 400, "limit")


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "gallery.idx/manifest.json", "{first}/../../query/{name}", "{root}/manifest.json", ""],
)
def test_no_file_beyond_the_index_images_is_served(client, service, path):
    first = service.gallery.paths[0]
    path = path.format(first=first, name=Path(first).name, root=service.gallery.shards[0].root)
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


def test_browsing_filters_by_camera_identity_and_folder(client, service):
    facets = client.get("/api/health").json()["facets"]
    assert facets["labelled"] and [c["value"] for c in facets["cameras"]] == [1, 2]
    assert sum(c["images"] for c in facets["cameras"]) == len(service.gallery)
    assert facets["folders"] == [{"value": ".", "images": len(service.gallery)}]
    camera2 = client.get("/api/gallery", params={"camera": 2, "limit": 100}).json()
    expected = [p for p in service.gallery.paths if identity(p)[1] == 2]
    assert camera2["total"] == len(expected) and [i["path"] for i in camera2["items"]] == expected
    pid = identity(expected[0])[0]
    both = client.get("/api/gallery", params={"camera": 2, "pid": pid}).json()
    assert [i["path"] for i in both["items"]] == [p for p in expected if identity(p)[0] == pid]
    assert client.get("/api/gallery", params={"folder": "elsewhere"}).json()["total"] == 0
    refused(client.get("/api/gallery", params={"camera": "two"}), 422, "camera")


def test_rank_and_ap_of_a_labelled_query_follow_the_evaluation_protocol(client, service, reid, query_images):
    from qaconv.metrics.ranking import evaluate_rank

    query = next(q for q in query_images if identity(q.name)[0] > 0)
    answer = upload(client, query, topk=3)
    evaluation = client.get("/api/evaluate", params={"query": answer["query"]}).json()
    paths = [p for p in service.gallery.paths if identity(p)[0] != -1]  # junk boxes, as the data sets drop them
    scores = reid.score([query], paths).numpy()
    pid, camid = identity(query.name)
    result = evaluate_rank(-scores, [pid], [identity(p)[0] for p in paths], [camid], [identity(p)[1] for p in paths])
    assert evaluation["average_precision"] == pytest.approx(result.mAP, abs=1e-6)
    first = int(np.argmax(result.cmc > 0)) + 1
    assert evaluation["first_true_match_rank"] == first
    assert evaluation["true_matches"] == sum(identity(p)[0] == pid and identity(p)[1] != camid for p in paths)
    refused(client.get("/api/evaluate", params={"query": "0" * 16}), 404, "unknown query")


def test_an_unlabelled_query_has_no_rank(client, query_images):
    data = query_images[0].read_bytes()
    answer = client.post("/api/search", files={"image": ("photo.jpg", data)}, data={"topk": 2}).json()
    refused(client.get("/api/evaluate", params={"query": answer["query"]}), 400, "photo.jpg", "no identity")


def test_results_export_as_csv_json_and_a_self_contained_report(client, query_images):
    answer = upload(client, query_images[0], topk=4)
    csv_file = client.get("/api/export", params={"query": answer["query"], "format": "csv"})
    assert csv_file.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_file.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(csv_file.text)))
    assert [r["path"] for r in rows] == [h["path"] for h in answer["hits"]]
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4]
    assert [float(r["score"]) for r in rows] == pytest.approx([h["score"] for h in answer["hits"]], abs=1e-5)
    exported = client.get("/api/export", params={"query": answer["query"], "format": "json"}).json()
    assert exported["hits"] == answer["hits"] and exported["query"] == answer["query"]
    report = client.get("/api/export", params={"query": answer["query"], "format": "html"}).text
    assert report.count("data:image/jpeg;base64,") == 5 and "http" not in report.replace("https", "")  # inlined
    refused(client.get("/api/export", params={"query": answer["query"], "format": "xls"}), 400, "csv, json, html")


@pytest.fixture()
def growing(reid, gallery_dir, tmp_path):
    """A service over a copy of the gallery that takes new images into gallery/new."""
    gallery = tmp_path / "gallery"
    shutil.copytree(gallery_dir, gallery)
    reid.build_index(gallery, tmp_path / "gallery.idx", first_stage="none")
    service = GalleryService.open(tmp_path / "gallery.idx", reid.checkpoint, add_to=gallery / "new")
    return service, gallery


def test_added_images_are_written_indexed_and_found(reid, growing, query_images):
    service, gallery = growing
    client = TestClient(create_app(service), base_url=LOCAL)
    before = len(service.gallery)
    files = [("images", ("0999_c1s1_000001_01.jpg", query_images[0].read_bytes())),
             ("images", ("../escape.jpg", query_images[1].read_bytes()))]  # fmt: skip
    answer = client.post("/api/gallery", files=files)
    assert answer.status_code == 200, answer.text
    added = [Path(p) for p in answer.json()["added"]]
    assert [p.name for p in added] == ["0999_c1s1_000001_01.jpg", "escape.jpg"]
    assert all(p.parent == (gallery / "new").resolve() and p.is_file() for p in added)
    assert answer.json()["images"] == before + 2 == len(service.gallery)
    hits = upload(client, query_images[0], topk=1)["hits"]
    assert hits[0]["path"] == str(added[0]) and hits[0]["pid"] == 999  # the query's own bytes, now in the gallery
    assert reid.search([query_images[0]], GalleryIndex.open(service.index_paths[0]), topk=1).paths[0][0] == str(
        added[0]
    )
    refused(client.post("/api/gallery", files=[("images", ("x.jpg", b"not an image"))]), 400, "x.jpg")
    assert len(service.gallery) == before + 2  # a refused file writes nothing


def test_additions_need_a_folder_inside_the_gallery(reid, index_dir, tmp_path, client):
    refused(client.post("/api/gallery", files=[("images", ("a.jpg", b"x"))]), 400, "--add-to")
    with pytest.raises(QAConvError, match="inside the gallery"):
        GalleryService.open(index_dir, reid.checkpoint, add_to=tmp_path / "elsewhere")
