"""Graph Sampler: epoch index building and the memory of the neighbour search.

1. Index building (`GraphSampler`, B=64, K=2, so 32 classes per batch and 31 neighbours) for
   10k and 100k classes with 5..15 images each (10 on average), from a given random neighbour
   table, so only the sampler's own work is timed: representatives, table checks, the cursor
   logic for 64 images per batch and the batch shuffle. Baseline: the published per-class Python
   loop (`graph_index` of reid/utils/data/graph_sampler.py, V1.2), written out below, on the
   smallest size only.
2. Neighbour search: `qaconv_neighbors_fn` (running top-k over score blocks) against the dense
   version (all C x C QAConv scores in one matrix, diagonal masked, top-k) for 20k classes. To
   keep this affordable on a CPU the feature maps are tiny (16 channels, 4 x 2 locations), which
   shrinks the scoring but not the C x C matrix; the published code also added a C x C identity,
   which the dense baseline here leaves out. Memory is the peak extra resident memory of one call
   (`peak_extra_mib`), time the wall time of that call.

--quick: 2k and 10k classes for index building, 3k for the neighbour search.
"""

from __future__ import annotations

import argparse
import time
from random import shuffle

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import best_time, peak_extra_mib, save
from qaconv.data.samplers import GraphSampler, PKSampler
from qaconv.engine.neighbors import qaconv_neighbors_fn
from qaconv.matching import QAConv, pairwise_scores

BATCH, K = 64, 2
NEIGHBOURS = BATCH // K - 1
MAP_SHAPE = (16, 4, 2)


def random_labels(num_classes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.permutation(np.repeat(np.arange(num_classes), rng.integers(5, 16, num_classes)))


def random_table(num_classes: int, k: int, seed: int = 0) -> np.ndarray:
    """k distinct other classes per row: increasing random offsets from the row's own class."""
    rng = np.random.default_rng(seed)
    offsets = np.cumsum(rng.integers(1, (num_classes - 1) // k + 1, size=(num_classes, k)), axis=1)
    return (np.arange(num_classes)[:, None] + offsets) % num_classes


def published_epoch(index_dic: list[list[int]], pointers: list[int], topk_index: np.ndarray) -> list[int]:
    """One epoch of the published graph_index after the top-k: a Python loop per anchor and class."""
    sam_index = []
    for i in range(len(index_dic)):
        id_index = topk_index[i, :].tolist()
        id_index.append(i)
        index = []
        for j in id_index:
            img_index = index_dic[j]
            len_p = len(img_index)
            index_p = []
            remain = K
            while remain > 0:
                end = pointers[j] + remain
                idx = img_index[pointers[j] : end]
                index_p.extend(idx)
                remain -= len(idx)
                pointers[j] = end
                if end >= len_p:
                    shuffle(img_index)
                    pointers[j] = 0
            index.extend(index_p)
        sam_index.extend(index)
    batches = np.array(sam_index).reshape((-1, BATCH))
    np.random.shuffle(batches)
    return list(batches.flatten())


def bench_index_building(sizes: list[int], repeat: int) -> list[dict]:
    rows = []
    baseline_s = 0.0
    for num_classes in sizes:
        labels = random_labels(num_classes)
        table = torch.from_numpy(random_table(num_classes, NEIGHBOURS))
        if num_classes == sizes[0]:
            order = np.argsort(labels, kind="stable")
            index_dic = [group.tolist() for group in np.split(order, np.cumsum(np.bincount(labels))[:-1])]
            for group in index_dic:
                shuffle(group)
            pointers = [0] * num_classes
            topk_index = table.numpy()
            baseline_s = best_time(lambda d=index_dic, p=pointers, t=topk_index: published_epoch(d, p, t), repeat=1)
            rows.append(
                {
                    "case": f"published Python loop, {num_classes} classes",
                    "seconds": baseline_s,
                    "images": num_classes * BATCH,
                    "vs published": 1.0,
                }
            )
        start = time.perf_counter()
        sampler = GraphSampler(labels, lambda idx, k, t=table: t, batch_size=BATCH, num_instances=K)
        setup_s = time.perf_counter() - start
        epoch_s = best_time(lambda s=sampler: iter(s), repeat=repeat)
        rows.append(
            {
                "case": f"GraphSampler epoch, {num_classes} classes",
                "seconds": epoch_s,
                "images": num_classes * BATCH,
                "vs published": baseline_s / epoch_s if num_classes == sizes[0] else "",
            }
        )
        rows.append({"case": f"GraphSampler setup, {num_classes} classes", "seconds": setup_s})
        pk = PKSampler(labels, batch_size=BATCH, num_instances=K)
        pk_s = best_time(lambda s=pk: iter(s), repeat=repeat)
        rows.append({"case": f"PKSampler epoch, {num_classes} classes", "seconds": pk_s, "images": len(pk) * BATCH})
    return rows


def dense_neighbors(matcher: QAConv, maps: torch.Tensor, k: int) -> torch.Tensor:
    """All C x C scores in one matrix, self masked, top-k (the published sampler, without its C x C eye)."""
    scores = pairwise_scores(matcher, maps, maps, prob_block=1024, gal_block=1024)
    scores.fill_diagonal_(-float("inf"))
    return scores.topk(k, dim=1).indices


def random_maps(num_classes: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return F.normalize(torch.randn(num_classes, *MAP_SHAPE, generator=g), dim=1)


def bench_neighbour_search(num_classes: int) -> list[dict]:
    matcher = QAConv(*MAP_SHAPE).eval()
    maps = random_maps(num_classes)
    indices = torch.arange(num_classes)
    running = qaconv_neighbors_fn(lambda idx: maps[idx], matcher, block_size=1024)
    cases = {
        "dense C x C top-k": lambda: dense_neighbors(matcher, maps, NEIGHBOURS),
        "running top-k (qaconv_neighbors_fn)": lambda: running(indices, NEIGHBOURS),
    }
    measured = {}
    for name, fn in cases.items():
        start = time.perf_counter()
        mib = peak_extra_mib(fn)
        measured[name] = (mib, time.perf_counter() - start)
    dense_mib = measured["dense C x C top-k"][0]
    return [
        {
            "case": f"neighbours: {name}, {num_classes} classes",
            "seconds": seconds,
            "peak extra MiB": mib,
            "dense / this MiB": dense_mib / max(mib, 1.0),
        }
        for name, (mib, seconds) in measured.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and one repeat")
    args = parser.parse_args()
    sizes = [2_000, 10_000] if args.quick else [10_000, 100_000]
    search = 3_000 if args.quick else 20_000
    np.random.seed(0)
    rows = bench_index_building(sizes, repeat=1 if args.quick else 3)
    rows += bench_neighbour_search(search)
    save(
        "sampler",
        rows,
        notes=f"B={BATCH}, K={K} ({NEIGHBOURS} neighbours), 5..15 images per class; index building from a given "
        f"random neighbour table (targets: 10k classes < 1 s, 100k < 10 s); 'vs published' is the published "
        f"per-anchor Python loop's time over ours, same size. Neighbour search on {MAP_SHAPE[0]}x{MAP_SHAPE[1]}x"
        f"{MAP_SHAPE[2]} feature maps (tiny, to keep the all-pairs scoring affordable on CPU); memory is the "
        "peak extra resident memory of one call, seconds the wall time of that call.",
    )


if __name__ == "__main__":
    main()
