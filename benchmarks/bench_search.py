"""Gallery search: exhaustive QAConv against two-stage (global-descriptor shortlist + QAConv re-scoring).

To keep a 100k gallery affordable on a small CPU the maps are small and synthetic, NOT the
paper's 128 x 24 x 8: C=32 channels on 6 x 2 locations, float16 in a memory-mapped .npy (as in a
`qaconv index build` folder). They have identity structure so that recall means something:
every identity (one per 10 gallery entries) has a random prototype map, and each entry is the
prototype plus Gaussian noise (sigma 1.0 per element), rolled by -1/0/+1 rows (misalignment), and
L2-normalised per location; queries are new views of random identities. Reports the latency per
query (queries scored in one batch, divided by their number) and the two-stage recall@10: the
fraction of the exhaustive top-10 that the two-stage top-10 keeps. The baseline is exhaustive
search in the same run; `speedup` is its latency over the method's. `id-precision@10` is the
fraction of the top-10 that shows the query's identity (how good the kept results are).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import best_time, save
from qaconv.inference import global_descriptors, search
from qaconv.matching import QAConv

C, H, W = 32, 6, 2
ENTRIES_PER_ID = 10
NOISE = 1.0
TOPK = 10
SHORTLISTS = (100, 1000)


def views(prototypes: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Noisy, row-shifted, per-location L2-normalised views of the prototypes of `labels`."""
    x = prototypes[labels] + NOISE * torch.randn(len(labels), C, H, W, generator=generator)
    shifts = torch.randint(-1, 2, (len(labels),), generator=generator)
    for s in (-1, 1):
        x[shifts == s] = torch.roll(x[shifts == s], s, dims=2)
    return F.normalize(x, dim=1)


def write_gallery(path: Path, size: int, prototypes: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Write `size` views as float16 [size, C, H, W] to a .npy; return it memory-mapped, and the identities."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(prototypes), (size,), generator=generator)
    maps = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(size, C, H, W))
    for start in range(0, size, 8192):
        maps[start : start + 8192] = views(prototypes, labels[start : start + 8192], generator).half().numpy()
    maps.flush()
    del maps
    return torch.from_numpy(np.load(path, mmap_mode="c")), labels


def recall(found: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean fraction of each row of `truth` that appears in the same row of `found`."""
    hits = [len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist(), strict=True)]
    return float(np.mean(hits))


def measure(matcher: QAConv, folder: Path, size: int, num_queries: int, repeat: int) -> list[dict]:
    """Rows for one gallery size: exhaustive, then two-stage with each shortlist length."""
    generator = torch.Generator().manual_seed(size)
    prototypes = torch.randn(size // ENTRIES_PER_ID, C, H, W, generator=generator)
    gallery, labels = write_gallery(folder / f"maps{size}.npy", size, prototypes, seed=size + 1)
    query_labels = torch.randint(0, len(prototypes), (num_queries,), generator=generator)
    query = views(prototypes, query_labels, generator)

    def precision(found: torch.Tensor) -> float:
        return (labels[found] == query_labels[:, None]).float().mean().item()

    descriptors = global_descriptors(gallery)
    exact, _ = search(matcher, query, gallery, TOPK)
    base_s = best_time(lambda: search(matcher, query, gallery, TOPK), repeat=repeat, warmup=0)
    rows = [
        {
            "gallery": size,
            "method": "exhaustive QAConv",
            "ms/query": 1e3 * base_s / num_queries,
            "speedup": 1.0,
            "recall@10": 1.0,
            "id-precision@10": precision(exact),
        }
    ]
    for n in SHORTLISTS:
        found = search(matcher, query, gallery, TOPK, shortlist_size=n, gallery_descriptors=descriptors)[0]
        seconds = best_time(
            lambda n=n: search(matcher, query, gallery, TOPK, shortlist_size=n, gallery_descriptors=descriptors),
            repeat=repeat,
            warmup=0,
        )
        rows.append(
            {
                "gallery": size,
                "method": f"two-stage, shortlist {n}",
                "ms/query": 1e3 * seconds / num_queries,
                "speedup": base_s / seconds,
                "recall@10": recall(found, exact),
                "id-precision@10": precision(found),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="galleries of 2k and 10k, 8 queries, one repeat")
    args = parser.parse_args()
    sizes = (2_000, 10_000) if args.quick else (10_000, 100_000)
    num_queries = 8 if args.quick else 32
    repeat = 1 if args.quick else 3
    torch.manual_seed(0)
    matcher = QAConv(C, H, W).eval()
    with torch.no_grad():  # a non-uniform location weighting, as after training
        matcher.fc.weight.uniform_(0.5 / (H * W), 1.5 / (H * W))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            rows += measure(matcher, Path(tmp), size, num_queries, repeat)
    save(
        "search",
        rows,
        notes=f"synthetic clustered maps C={C}, {H}x{W} locations, float16 memory-mapped; "
        f"{num_queries} queries per batch; recall@10 of two-stage against exhaustive QAConv; "
        f"{'--quick' if args.quick else 'full'} run",
    )


if __name__ == "__main__":
    main()
