"""`qaconv serve` on a hostile network and with the uploads users have (audit cases C1-C16 of
docs/reliability.md): Host names, other origins, the access token, security headers, uploads read as every
other path reads them; bad options, a port in use and a missing extra stop the command, and the commands the demo
prints index and serve a gallery."""

from __future__ import annotations

import io
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from qaconv.cli import main
from qaconv.inference import GalleryIndex
from qaconv.serve import GalleryService, serve_commands
from qaconv.serve.app import create_app
from qaconv.serve.server import bind
from tests.commands.images import png_bomb, png_bytes, sideways_with_exif, variants

ROOT = Path(__file__).resolve().parents[2]
LOCAL = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def index_dir(reid, gallery_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("served") / "g.idx"
    reid.build_index(gallery_dir, out)
    return out


@pytest.fixture(scope="module")
def service(reid, index_dir):
    return GalleryService(reid, GalleryIndex.open(index_dir))


def client(service, **guard) -> TestClient:
    return TestClient(create_app(service, **guard), base_url=LOCAL)


def search(test_client, data: bytes, name: str = "q.png", **headers) -> object:
    return test_client.post("/api/search", files={"image": (name, data)}, data={"topk": 3}, headers=headers)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "attacker.test:80", ""])
def test_c1_a_request_for_another_host_name_is_refused_dns_rebinding(service, host):
    answer = client(service).get("/api/health", headers={"host": host})
    assert answer.status_code == 421 and "does not answer to the host name" in answer.json()["error"]
    assert "index" not in answer.json()  # no path, no gallery


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "192.168.1.20:8000"])
def test_c2_addresses_and_localhost_are_answered(service, host):
    assert client(service).get("/api/health", headers={"host": host}).status_code == 200


def test_c3_a_name_given_with_allowed_host_is_answered(service):
    allowed = client(service, allowed_hosts=["reid.lab.example"])
    assert allowed.get("/api/health", headers={"host": "reid.lab.example:8000"}).status_code == 200
    assert allowed.get("/api/health", headers={"host": "other.lab.example"}).status_code == 421


def test_c4_a_search_posted_by_a_page_of_another_site_is_refused(service, query_images):
    data = query_images[0].read_bytes()
    answer = search(client(service), data, origin="https://evil.example")
    assert answer.status_code == 403 and "pages of other sites" in answer.json()["error"]
    assert search(client(service), data, origin="null").status_code == 403  # a sandboxed or file:// page


def test_c5_a_costly_get_from_another_site_is_refused(service, query_images):
    test_client = client(service)
    query = search(test_client, query_images[0].read_bytes()).json()["query"]
    url = f"/api/match?query={query}&gallery={service.gallery.paths[0]}"
    assert test_client.get(url, headers={"sec-fetch-site": "cross-site"}).status_code == 403
    assert test_client.get(url, headers={"sec-fetch-site": "same-origin"}).status_code == 200


def test_c6_the_apps_own_page_and_clients_without_an_origin_search(service, query_images):
    data = query_images[0].read_bytes()
    assert search(client(service), data, origin=LOCAL, **{"sec-fetch-site": "same-origin"}).status_code == 200
    assert search(client(service), data).status_code == 200  # curl, scripts


def test_c7_with_a_token_the_api_needs_it_by_header_or_by_the_cookie_the_page_sets(service):
    guarded = client(service, token="s3cret-token")
    assert guarded.get("/api/health").status_code == 401
    assert guarded.get("/api/health", headers={"x-qaconv-token": "wrong"}).status_code == 401
    assert guarded.get("/api/health", headers={"x-qaconv-token": "s3cret-token"}).status_code == 200
    page = guarded.get("/?token=s3cret-token")
    assert page.status_code == 200 and "qaconv_token=s3cret-token" in page.headers["set-cookie"]
    assert "SameSite=Strict" in page.headers["set-cookie"] and "HttpOnly" in page.headers["set-cookie"]
    assert guarded.get("/api/health").status_code == 200  # the cookie from the page
    assert "set-cookie" not in client(service, token="s3cret-token").get("/?token=wrong").headers


def test_c8_every_answer_carries_the_security_headers(service):
    for path in ("/", "/api/health", "/static/app.js", "/api/nothing"):
        headers = client(service).get(path).headers
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
    refused = client(service).get("/api/health", headers={"host": "evil.example"}).headers
    assert refused["x-frame-options"] == "DENY"


@pytest.mark.parametrize("kind", ["16-bit.png", "cmyk.jpg", "palette.png", "animated.gif", "transparent.png"])
def test_c9_to_c13_an_upload_gets_the_hits_that_qaconv_search_gets(service, reid, query_images, tmp_path, kind):
    path = variants(query_images[0], tmp_path)[kind]
    hits = search(client(service), path.read_bytes(), name=path.name).json()["hits"]
    expected = reid.search(path, service.gallery, topk=3)
    assert [h["path"] for h in hits] == expected.paths[0]


def test_c14_an_upload_with_its_exif_orientation_gets_the_hits_of_the_upright_picture(service, reid, query_images,
                                                                                       tmp_path):  # fmt: skip
    phone = sideways_with_exif(query_images[0], tmp_path / "phone.png")
    upright = png_bytes(Image.open(query_images[0]).convert("RGB"))
    hits = search(client(service), phone.read_bytes()).json()["hits"]
    assert [h["path"] for h in hits] == [h["path"] for h in search(client(service), upright).json()["hits"]]


def test_c15_a_decompression_bomb_upload_is_refused_from_its_header(service, tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png", 12_000).read_bytes()
    answer = search(client(service), bomb, name="bomb.png")
    assert answer.status_code == 413 and "12000 x 12000 pixels" in answer.json()["error"]


def test_c16_a_big_photo_is_kept_at_the_models_input_size_only(service, tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 2000), (90, 120, 150)).save(buffer, "JPEG")
    query = search(client(service), buffer.getvalue(), name="big.jpg").json()["query"]
    assert service.queries.get(query).size == (32, 64)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--token", "short"], "--token must be at least 8 characters"),
        (["--max-image-pixels", "0"], "--max-image-pixels must be at least 1"),
        (["--port", "70000"], "--port must be between 0 and 65535"),
    ],
)
def test_c17_bad_serve_options_are_one_line_before_anything_loads(index_dir, checkpoint, capsys, flags, message):
    assert main(["serve", "--index", str(index_dir), "--checkpoint", str(checkpoint), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# ----------------------------------------------------------------------- the command: options, port, extra, demo


def test_port_in_use_is_a_clear_error(capsys, index_dir, checkpoint):
    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        argv = ["serve", "--index", str(index_dir), "--checkpoint", str(checkpoint), "--port", str(port)]
        assert main([*argv, "--device", "cpu"]) == 2
    finally:
        taken.close()
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_without_the_serve_extra_the_command_says_what_to_install(monkeypatch, capsys, index_dir, checkpoint):
    for name in ("qaconv.serve.app", "qaconv.serve.server"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    assert main(["serve", "--index", str(index_dir), "--checkpoint", str(checkpoint)]) == 2
    assert "needs the optional packages fastapi, uvicorn and python-multipart: pip install 'qaconv[serve]'" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--port", "70000"], "--port must be between 0 and 65535"),
        (["--max-upload-mb", "0"], "--max-upload-mb must be positive"),
        (["--checkpoint", "{other}"], "was built with another checkpoint"),
        (["--index", "{missing}"], "index not found"),
        (["--add-to", "{outside}"], "must be a folder inside the gallery"),
    ],
)
def test_bad_options_stop_the_command(capsys, index_dir, checkpoint, other_checkpoint, tmp_path, extra, message):
    names = {"other": other_checkpoint, "missing": tmp_path / "none.idx", "outside": tmp_path / "new"}
    argv = ["serve", "--index", str(index_dir), "--checkpoint", str(checkpoint), "--device", "cpu"]
    assert main(argv + [x.format(**names) for x in extra]) == 2
    assert message in capsys.readouterr().err


def test_the_demo_commands_index_and_serve_a_gallery(index_dir, checkpoint, gallery_dir, tmp_path):
    """What `qaconv demo` prints works as it is: the index command builds an index, the serve command serves it."""
    build, serve = serve_commands(checkpoint, gallery_dir, tmp_path / "my gallery.idx")
    assert main([*shlex.split(build)[1:], "--device", "cpu"]) == 0
    assert serve == f"qaconv serve --index '{tmp_path / 'my gallery.idx'}' --checkpoint {checkpoint}"
    default = serve_commands("runs/demo/run", "g")[1]
    assert default == "qaconv serve --index runs/demo/run/gallery.idx --checkpoint runs/demo/run"
    args = [*shlex.split(serve)[1:], "--port", "0", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "qaconv", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        lines = [process.stdout.readline(), process.stdout.readline()]
        assert lines[0].startswith(f"serving {tmp_path / 'my gallery.idx'} ("), lines
        url = lines[1].split()[1]
        assert url.startswith("http://127.0.0.1:") and lines[1].strip().endswith("Ctrl+C stops")
        health = httpx2.get(url + "api/health", timeout=30).json()
        assert health["index"]["images"] == len(list(gallery_dir.glob("*.jpg")))
    finally:
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
