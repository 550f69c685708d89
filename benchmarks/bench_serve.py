"""`qaconv serve`: latency of search and match through the web server against the same calls in process.

The gallery is a demo-sized synthetic one (style B: 300 identities, 4 cameras, about
1,300 gallery images of 128 x 64; `--quick`: the quick demo's 160 identities), indexed with a model
of the demo's architecture (ResNet-18 IBN-b to layer3, neck 64, 128 x 64 input; random weights, as
only the time matters). The server runs on a thread of this process (uvicorn on 127.0.0.1) and is
called over HTTP with the query file's bytes; the baseline is the same `ReID` call in process:
`reid.search(query, index, topk=20)` and `reid.match(query, hit).plot()`. `overhead ms` is the
difference of the wall times (upload, multipart parsing and decoding, JSON or PNG encoding, HTTP),
the price of the app per request; the CPU columns are this process's CPU time per call (server and
client are both in it), steadier than wall time on a shared machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import torch

from benchmarks.common import save
from qaconv.config import ModelConfig
from qaconv.data.synthetic import SynthConfig, generate
from qaconv.engine.checkpoint import build_model, model_payload, save_checkpoint
from qaconv.inference import GalleryIndex, ReID
from qaconv.serve import GalleryService
from qaconv.serve.app import create_app
from qaconv.serve.server import BackgroundServer

DEMO_MODEL = ModelConfig(arch="resnet18", ibn="b", final_layer="layer3", neck=64, height=128, width=64)
TOPK = 20
SHORTLIST = 100


def demo_gallery(root: Path, num_ids: int) -> tuple[ReID, GalleryIndex, list[Path]]:
    """The demo's test style written to `root`, a demo-sized model, its index, and the query images."""
    data = root / "synth-B"
    generate(data, SynthConfig(num_ids=num_ids, num_cams=4, seed=1, style="B"))
    torch.manual_seed(0)
    model, matcher = build_model(DEMO_MODEL)
    checkpoint = save_checkpoint(model_payload(model, matcher, DEMO_MODEL), root / "run" / "checkpoint.pt")
    reid = ReID.from_checkpoint(checkpoint, device="cpu")
    index = reid.build_index(data / "bounding_box_test", root / "gallery.idx")
    return reid, index, sorted((data / "query").glob("*.jpg"))


def interleaved_best(a: Callable[[], object], b: Callable[[], object], repeat: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of `a` and of `b`, each the best of `repeat` alternating calls after one warm-up.

    Alternating puts the load of a shared machine on both alike. CPU is this process's time, all
    threads (torch's, the server's and the client's), which a busy machine inflates less than wall time.
    """
    a(), b()
    best = [[float("inf")] * 2, [float("inf")] * 2]
    for _ in range(repeat):
        for i, fn in enumerate((a, b)):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            best[i] = [min(best[i][0], time.perf_counter() - wall), min(best[i][1], time.process_time() - cpu)]
    return [tuple(x) for x in best]


def measure(reid: ReID, index: GalleryIndex, query: Path, repeat: int) -> list[dict]:
    """Rows for exhaustive search, two-stage search and one match picture, in process and through the server."""
    gallery = reid.search(query, index, topk=TOPK).paths[0][0]
    files = {"image": (query.name, query.read_bytes())}
    exhaustive, two_stage = {"topk": TOPK}, {"topk": TOPK, "shortlist": SHORTLIST}
    rows = []
    with (
        BackgroundServer(create_app(GalleryService(reid, index))) as server,
        httpx2.Client(base_url=server.url, timeout=120) as client,
    ):
        query_id = client.post("/api/search", files=files, data=exhaustive).raise_for_status().json()["query"]
        calls = {
            f"search, exhaustive, top-{TOPK}": (
                lambda: reid.search(query, index, topk=TOPK),
                lambda: client.post("/api/search", files=files, data=exhaustive),
            ),
            f"search, two-stage (shortlist {SHORTLIST}), top-{TOPK}": (
                lambda: reid.search(query, index, topk=TOPK, shortlist=SHORTLIST),
                lambda: client.post("/api/search", files=files, data=two_stage),
            ),
            "match picture": (
                lambda: reid.match(query, gallery).plot(),
                lambda: client.get("/api/match", params={"query": query_id, "gallery": gallery}),
            ),
        }
        for name, (in_process, through_server) in calls.items():
            local, server = interleaved_best(in_process, lambda f=through_server: f().raise_for_status(), repeat)
            rows.append(
                {
                    "request": name,
                    "gallery": len(index),
                    "in process ms": 1e3 * local[0],
                    "server ms": 1e3 * server[0],
                    "overhead ms": 1e3 * (server[0] - local[0]),
                    "server / in process": server[0] / local[0],
                    "CPU ms in process": 1e3 * local[1],
                    "CPU ms server": 1e3 * server[1],
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the quick demo's gallery (160 ids), 3 repeats")
    args = parser.parse_args()
    num_ids, repeat = (160, 3) if args.quick else (300, 5)
    with tempfile.TemporaryDirectory() as tmp:
        reid, index, queries = demo_gallery(Path(tmp), num_ids)
        rows = measure(reid, index, queries[0], repeat)
    save(
        "serve",
        rows,
        notes=f"synthetic style B, {num_ids} identities ({len(index)} gallery images), the demo's model "
        f"(ResNet-18 IBN-b, 64 x 8 x 4 maps), CPU; best of {repeat}; server on 127.0.0.1 in the same process; "
        f"{'--quick' if args.quick else 'full'} run",
    )


if __name__ == "__main__":
    main()
