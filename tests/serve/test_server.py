"""`qaconv serve` as a real server: concurrent requests, the command itself, and the commands the demo prints."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from qaconv.cli import main
from qaconv.serve import serve_commands
from qaconv.serve.app import create_app
from qaconv.serve.server import BackgroundServer, bind

ROOT = Path(__file__).resolve().parents[2]


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
    ],
)
def test_bad_options_stop_the_command(capsys, index_dir, checkpoint, other_checkpoint, tmp_path, extra, message):
    names = {"other": other_checkpoint, "missing": tmp_path / "none.idx"}
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
