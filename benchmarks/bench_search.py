"""Gallery search at scale: the location first stage against exhaustive QAConv, on maps of trained models.

Targets (docs/inference.md#the-first-stage): recall@10 against exhaustive QAConv >= 0.95 at >= 50x its speed, with
the first stage's memory at most a quarter of the float16 maps', at 1,000,000 entries of the demo's map size
(64 x 8 x 4) and at 100,000 of the paper's (128 x 24 x 8), on this 2-core machine.

Maps:
- real: a trained model's maps of a synthetic pedestrian data set in the Market layout (`--images`, e.g.
  `qaconv synth --ids 4000 --images-per-id 10 --style A`), extracted once into --work. `--checkpoint` is a
  model with the demo's maps (the demo's run), `--paper-checkpoint` one with the paper's map size (a ResNet-18
  IBN-b to layer2 with a 128-channel neck at 192 x 64, trained from scratch on the demo's style B:
  `qaconv train --dataset runs/demo/full/synth-B --pretrained none --arch resnet18 --final-layer layer2
  --neck 128 --height 192 --width 64 --batch-size 32 --max-epochs 8 --max-iters-per-epoch 150`; the measured
  model is its checkpoint after 5 epochs).
- recombined (the large galleries): new identities made of body bands (rows) of real ones: each takes its head,
  upper-body and lower-body rows from three real identities, and each of its views takes each band from a
  blend of two random images of that identity (normalised per location), so the location vectors are a trained
  model's, the views of an identity differ as real views do, no two views share a location vector exactly (a
  real image is reused by many views of a large gallery), and identities share parts as people share clothes.
- clustered (contrast only): random prototypes plus noise, what the earlier version of this benchmark used.
"structure" rows compare galleries of one size made of real, recombined and clustered maps (even identities
of the real set are the recombination's parents, odd ones the real gallery): QAConv's score at ranks 1, 10 and
100 and the first stage's recall@10; recombined maps are a fair stand-in where they agree with the real ones.
"scale" rows: recombined galleries of the target sizes, float16 memory-mapped as in an index: exhaustive QAConv
(the baseline, timed once) and the first stage with its candidates re-scored (timed in the same run), recall@10
of the latter against the former, and the first stage's file over the maps' size.

    python -m benchmarks.bench_search --checkpoint runs/demo/run --paper-checkpoint runs/paper-shape \\
        --images data/synth-big --work runs/bench-search
    python -m benchmarks.bench_search --quick      # clustered maps only, 20,000 entries: a smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import save
from qaconv.data.datasets.names import label_from_name
from qaconv.inference import ReID, search
from qaconv.inference.first_stage import LOCATIONS_FILE, FirstStageSettings, LocationIndex
from qaconv.io import list_images
from qaconv.matching import QAConv

TOPK = 10
DEPTH = 100  # ranks of the score profile
BLOCK = 8192


# -------------------------------------------------------------------------------------------------- maps


def real_maps(checkpoint: str, images: Path, work: Path) -> tuple[np.ndarray, np.ndarray, QAConv]:
    """(maps [N, C, H, W] float16 memory-mapped, identities [N], the model's matcher) of every labelled image
    under `images` (junk and distractors left out), extracted once per checkpoint into `work`."""
    reid = ReID.from_checkpoint(checkpoint, batch_size=256)
    paths = [str(images / p) for p in list_images(images, recursive=True)]
    labelled = [(p, label_from_name(p)) for p in paths]
    labelled = [(p, lab[0]) for p, lab in labelled if lab is not None and lab[0] > 0]
    name = Path(checkpoint).resolve().name
    file, pid_file = work / f"real-{name}.npy", work / f"real-{name}-pids.npy"
    if not file.is_file() or len(np.load(pid_file)) != len(labelled):
        shape = (len(labelled), reid.matcher.num_features, reid.matcher.height, reid.matcher.width)
        out = np.lib.format.open_memmap(work / f".{file.name}", mode="w+", dtype=np.float16, shape=shape)
        for start in range(0, len(labelled), 1024):
            out[start : start + 1024] = reid.extract([p for p, _ in labelled[start : start + 1024]]).half().numpy()
            print(f"  extracted {min(start + 1024, len(labelled))} of {len(labelled)}", flush=True)
        out.flush()
        del out
        (work / f".{file.name}").rename(file)
        np.save(pid_file, np.array([pid for _, pid in labelled]))
    return np.load(file, mmap_mode="r"), np.load(pid_file), reid.matcher.eval()


def bands(height: int) -> list[tuple[int, int]]:
    """Head, upper-body and lower-body rows of a map of `height` rows."""
    a, b = max(1, round(height / 4)), max(2, round(height * 0.6))
    return [(0, a), (a, b), (b, height)]


class Recombiner:
    """New identities from body bands of real ones (see the module docstring); `views(ids, rng)` draws maps."""

    def __init__(self, maps: np.ndarray, pids: np.ndarray, identities: int, seed: int) -> None:
        self.maps = maps
        self.order = np.argsort(pids, kind="stable")
        parents, self.starts, self.counts = np.unique(pids[self.order], return_index=True, return_counts=True)
        rng = np.random.default_rng(seed)
        self.parents = np.stack([rng.permutation(len(parents))[:3] for _ in range(identities)])  # [ids, 3]
        self.bands = bands(maps.shape[2])

    def views(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One view [len(ids), C, H, W] float16 of each synthetic identity in `ids`: each band a blend of two real
        images of its parent identity (weights a and 1 - a, a uniform in [0.5, 1], normalised per location), so
        that no two views share a location vector exactly, as no two photographs do."""
        out = np.empty((len(ids), *self.maps.shape[1:]), dtype=np.float32)
        for band, (r0, r1) in enumerate(self.bands):
            parent = self.parents[ids, band]
            first, second = (self._image_of(parent, rng)[:, :, r0:r1] for _ in range(2))
            weight = rng.uniform(0.5, 1.0, (len(ids), 1, 1, 1)).astype(np.float32)
            blend = weight * first + (1 - weight) * second
            out[:, :, r0:r1] = blend / np.linalg.norm(blend, axis=1, keepdims=True)
        return out.astype(np.float16)

    def _image_of(self, parent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random real map of each parent identity, float32."""
        pick = self.order[self.starts[parent] + (rng.random(len(parent)) * self.counts[parent]).astype(np.int64)]
        unique, inverse = np.unique(pick, return_inverse=True)
        return np.asarray(self.maps[unique], dtype=np.float32)[inverse]


def recombined(real: np.ndarray, pids: np.ndarray, size: int, queries: int, path: Path, seed: int,
               per_id: int = 10) -> tuple[np.ndarray, torch.Tensor]:  # fmt: skip
    """A recombined gallery of `size` entries (about `per_id` views per identity) written float16 to `path`,
    memory-mapped, and `queries` further views of identities in it."""
    identities = max(1, size // per_id)
    maker = Recombiner(real, pids, identities, seed)
    rng = np.random.default_rng(seed + 1)
    if not path.is_file() or np.load(path, mmap_mode="r").shape[0] != size:
        out = np.lib.format.open_memmap(path.with_name(f".{path.name}"), mode="w+", dtype=np.float16,
                                        shape=(size, *real.shape[1:]))  # fmt: skip
        for start in range(0, size, BLOCK):
            ids = rng.integers(0, identities, min(BLOCK, size - start))
            out[start : start + len(ids)] = maker.views(ids, rng)
        out.flush()
        del out
        path.with_name(f".{path.name}").rename(path)
    query = maker.views(
        np.random.default_rng(seed + 2).integers(0, identities, queries), np.random.default_rng(seed + 4)
    )
    return np.load(path, mmap_mode="r"), torch.from_numpy(query.astype(np.float32))


def clustered(shape: tuple[int, int, int], size: int, queries: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random prototypes (one per 10 entries) plus Gaussian noise, normalised per location; and queries."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(max(1, size // 10), *shape, generator=generator)

    def draw(n: int) -> torch.Tensor:
        labels = torch.randint(0, len(prototypes), (n,), generator=generator)
        return F.normalize(prototypes[labels] + torch.randn(n, *shape, generator=generator), dim=1)

    return draw(size).half(), draw(queries)


def random_matcher(shape: tuple[int, int, int]) -> QAConv:
    torch.manual_seed(0)
    matcher = QAConv(*shape).eval()
    with torch.no_grad():
        matcher.fc.weight.uniform_(0.5, 1.5)
    return matcher


# ---------------------------------------------------------------------------------------------- measures


def recall(truth: torch.Tensor, found: torch.Tensor) -> float:
    return float(np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(truth.tolist(), found.tolist(), strict=True)]))


def gallery_tensor(maps: np.ndarray | torch.Tensor) -> torch.Tensor:
    return maps if isinstance(maps, torch.Tensor) else torch.from_numpy(np.asarray(maps))


def structure_row(kind: str, matcher: QAConv, maps: Any, query: torch.Tensor, settings: FirstStageSettings) -> dict:
    """Score profile (ranks 1, 10, 100) and first-stage recall@10 of one gallery."""
    gallery = gallery_tensor(maps)
    exact_idx, exact_scores = search(matcher, query, gallery, DEPTH)
    stage = LocationIndex.build(np.asarray(maps), settings)
    found, _ = search(matcher, query, gallery, TOPK, first_stage=stage)
    return {
        "part": "structure",
        "maps": kind,
        "entries": len(gallery),
        "score@1": float(exact_scores[:, 0].mean()),
        "score@10": float(exact_scores[:, TOPK - 1].mean()),
        "score@100": float(exact_scores[:, DEPTH - 1].mean()),
        "recall@10": recall(exact_idx[:, :TOPK], found),
    }


#: First stages measured beside the default: multipliers of (probes, shortlist, candidates).
DEPTHS = ((1, 0.5, 1), (1, 1, 0.5), (1, 1, 1), (2, 1, 1), (1, 2, 2))


def scale_rows(kind: str, matcher: QAConv, maps: np.ndarray, query: torch.Tensor, work: Path) -> list[dict]:
    """Exhaustive QAConv (timed once) against the first stage with re-scoring (best of two), at the default
    settings for the gallery's size and at the other depths of DEPTHS, one run and one trained index."""
    gallery = gallery_tensor(maps)
    start = time.perf_counter()
    exact, _ = search(matcher, query, gallery, TOPK, prob_block=len(query))
    exhaustive_s = time.perf_counter() - start
    start = time.perf_counter()
    stage = LocationIndex.build(maps, seed=0)
    build_s = time.perf_counter() - start
    stage.save(work / LOCATIONS_FILE)
    default = stage.settings
    rows = []
    for probes, shortlist, candidates in DEPTHS:
        stage.settings = replace(
            default,
            probes=min(default.lists - 1, max(1, round(default.probes * probes))),
            shortlist=min(len(gallery), max(1, round(default.shortlist * shortlist))),
            candidates=min(len(gallery), max(1, round(default.candidates * candidates))),
        )
        times = []
        for _ in range(2):
            start = time.perf_counter()
            found, _ = search(matcher, query, gallery, TOPK, first_stage=stage)
            times.append(time.perf_counter() - start)
        rows.append({
            "part": "scale",
            "maps": kind,
            "entries": len(gallery),
            "map": "x".join(str(d) for d in maps.shape[1:]),
            "depth": "default" if (probes, shortlist, candidates) == (1, 1, 1) else
                     f"probes x{probes:g}, shortlist x{shortlist:g}, candidates x{candidates:g}",
            "exhaustive ms/query": 1e3 * exhaustive_s / len(query),
            "first stage ms/query": 1e3 * min(times) / len(query),
            "speedup": exhaustive_s / min(times),
            "recall@10": recall(exact, found),
            "memory / fp16 maps": stage.memory_bytes() / (maps.size * 2),
            "build s": build_s,
            "settings": str(stage.settings.to_dict()),
        })  # fmt: skip
        print(rows[-1], flush=True)
    return rows


# -------------------------------------------------------------------------------------------------- runs


def validate_and_scale(name: str, checkpoint: str, args: argparse.Namespace, size: int) -> list[dict]:
    """The structure rows at --validation entries and the scale row at `size`, for one model's maps (kept in
    --work, so a later invocation with the other model reuses them; --fresh measures again)."""
    work = Path(args.work)
    done = work / f"rows-{name}-{size}-{args.validation}-{args.queries}.json"
    if done.is_file() and not args.fresh:
        print(f"reusing {done}")
        return json.loads(done.read_text())
    real, pids, matcher = real_maps(checkpoint, Path(args.images), work)
    parents, own = pids % 2 == 0, pids % 2 == 1
    parent_maps, parent_pids = np.asarray(real[parents]), pids[parents]
    own_idx = np.flatnonzero(own)
    first_of_id = own_idx[np.unique(pids[own_idx], return_index=True)[1]]  # one query per identity
    queries = np.random.default_rng(0).choice(first_of_id, args.queries, replace=False)
    gallery_idx = np.setdiff1d(own_idx, first_of_id)[: args.validation]
    shape = real.shape[1:]
    settings = FirstStageSettings.for_gallery(len(gallery_idx), shape[0], shape[1] * shape[2])
    rows = [structure_row(f"{name}: real", matcher, real[gallery_idx],
                          torch.from_numpy(np.asarray(real[queries]).astype(np.float32)), settings)]  # fmt: skip
    maps, query = recombined(parent_maps, parent_pids, len(gallery_idx), args.queries, work / f"val-{name}.npy", 1)
    rows.append(structure_row(f"{name}: recombined", matcher, maps, query, settings))
    maps, query = clustered(shape, len(gallery_idx), args.queries, 2)
    rows.append(structure_row(f"{name}: clustered", matcher, maps.numpy(), query, settings))
    for row in rows:
        print(row, flush=True)
    maps, query = recombined(parent_maps, parent_pids, size, args.queries, work / f"scale-{name}.npy", 3)
    rows += scale_rows(f"{name}: recombined", matcher, maps, query, work)
    done.write_text(json.dumps(rows, indent=1))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a model with the demo's maps (64 x 8 x 4): the demo's run")
    parser.add_argument("--paper-checkpoint", help="a model with the paper's map size (128 x 24 x 8)")
    parser.add_argument("--images", help="a labelled synthetic data set (Market layout) to extract real maps from")
    parser.add_argument("--work", default="runs/bench-search", help="folder for the maps and indexes (tens of GB)")
    parser.add_argument("--queries", type=int, default=32, help="queries per gallery")
    parser.add_argument("--validation", type=int, default=16_000, help="entries of the structure rows' galleries")
    parser.add_argument("--demo-size", type=int, default=1_000_000, help="entries of the demo-size gallery")
    parser.add_argument("--paper-size", type=int, default=100_000, help="entries of the paper-size gallery")
    parser.add_argument("--quick", action="store_true", help="clustered maps only, 20,000 entries: a smoke run")
    parser.add_argument("--fresh", action="store_true", help="measure again what --work holds from an earlier run")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.quick:
        shape = (64, 8, 4)
        maps, query = clustered(shape, 20_000, 8, 0)
        path = work / "quick.npy"
        np.save(path, maps.numpy())
        rows = scale_rows("clustered (smoke run)", random_matcher(shape), np.load(path, mmap_mode="r"), query, work)
        save("search", rows, notes="--quick: clustered maps and an untrained matcher; the full run is the evidence")
        return
    if not (args.checkpoint and args.images):
        parser.error("--checkpoint and --images are needed (or --quick)")
    rows = validate_and_scale("demo", args.checkpoint, args, args.demo_size) if args.demo_size else []
    if args.paper_checkpoint:
        rows += validate_and_scale("paper", args.paper_checkpoint, args, args.paper_size)
    save(
        "search",
        rows,
        notes=f"{args.queries} queries per gallery; structure rows at {args.validation:,} entries; recall@10 of the "
        "first stage (settings from the gallery's size) against exhaustive QAConv; float16 maps memory-mapped",
    )


if __name__ == "__main__":
    main()
