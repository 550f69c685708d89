"""The first stage of gallery search: candidates from the gallery's location vectors, re-scored by QAConv.

QAConv's score is a learned sum over locations of each location's best match in the other image (late
interaction, as in ColBERT-style retrieval), so its first stage works on location vectors too, as PLAID does:
every location vector of every gallery map goes into a faiss IVF index with 4-bit product-quantisation codes
(fast-scan), labelled with its entry's position. Each query location fetches its `per_location` nearest gallery
locations; an entry's estimate is QAConv's query-to-gallery half,

    estimate(g) = sum over query locations s of weight[s] * best(s, g),

where best(s, g) is the best similarity found in g for location s, or, when none of g's locations was among
the fetched ones, the last similarity fetched for s (an upper bound of the true best). The `candidates` entries
with the highest estimates are re-scored exactly by QAConv. `FirstStageSettings.for_gallery` picks the index's
shape and the search's depth from the gallery's size; benchmarks/bench_search.py measures their recall against
exhaustive QAConv (docs/inference.md#the-first-stage).

faiss-cpu is an optional extra (`pip install qaconv[faiss]`): without it an index has no first stage and search
is exhaustive (or uses the global descriptors' shortlist).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from qaconv.errors import QAConvError

LOCATIONS_FILE = "locations.faiss"
#: Galleries from this many entries get a first stage when it is `auto` (smaller ones are searched exhaustively
#: in well under a second per query on 2 cores).
AUTO_MIN_ENTRIES = 50_000
_TRAIN_PER_LIST = 40  # training vectors per IVF list (faiss warns below 39)
_ADD_BLOCK = 4096  # entries encoded at a time while building


def faiss_module() -> Any:
    """faiss, or a one-line error saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise QAConvError("the location first stage needs faiss: pip install 'qaconv[faiss]' (faiss-cpu)") from None
    return faiss


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class FirstStageSettings:
    """The shape of a location index and the depth of its search.

    lists: IVF lists (coarse centroids); sub_quantizers: 4-bit codes per location vector (its bytes are half
    this); probes: lists visited per query location; per_location: nearest gallery locations fetched per query
    location; candidates: entries re-scored exactly by QAConv per query.
    """

    lists: int
    sub_quantizers: int
    probes: int
    per_location: int
    candidates: int

    @classmethod
    def for_gallery(cls, entries: int, channels: int, locations: int) -> FirstStageSettings:
        """Settings for a gallery of `entries` maps of `channels` x `locations`: about sqrt(vectors) lists
        (at most 4,096, so that training stays within a minute or so on 2 cores), 2 dimensions per 4-bit code up
        to 64 channels and 4 beyond, and a search depth that grows with the gallery: 4x per tenfold from 10,000
        entries (recall first: docs/inference.md#the-first-stage measures the trade-off)."""
        vectors = max(1, entries * locations)
        lists = int(min(4096, max(16, 2 ** round(math.log2(math.sqrt(vectors))))))
        lists = min(lists, max(1, vectors // _TRAIN_PER_LIST))
        per_code = 2 if channels <= 64 else 4
        sub_quantizers = max(1, channels // per_code)
        while channels % sub_quantizers:
            sub_quantizers -= 1
        grow = max(1.0, math.log10(max(entries, 10)) - 3)  # 1 up to 10k entries, 2 at 100k, 3 at 1M
        depth = 4 ** (grow - 1)  # each entry's part of a location's neighbours shrinks with the gallery
        return cls(
            lists=lists,
            sub_quantizers=sub_quantizers,
            probes=min(lists, int(8 * 2 ** (grow - 1))),
            per_location=int(512 * depth),
            candidates=int(min(entries, 400 * depth)),
        )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def with_candidates(self, candidates: int | None) -> FirstStageSettings:
        return self if candidates is None else replace(self, candidates=candidates)


def location_rows(maps: Tensor | np.ndarray) -> np.ndarray:
    """[N, C, H, W] maps -> [N*H*W, C] contiguous float32 rows, one per location (entry-major)."""
    array = maps.float().numpy() if isinstance(maps, Tensor) else np.asarray(maps, dtype=np.float32)
    n, c = array.shape[:2]
    return np.ascontiguousarray(array.reshape(n, c, -1).transpose(0, 2, 1).reshape(-1, c))


class LocationIndex:
    """Every location vector of a gallery in a faiss IVF-PQ fast-scan index; `candidates` ranks entries for a
    query by the estimate in the module docstring."""

    def __init__(self, index: Any, settings: FirstStageSettings, locations: int) -> None:
        self.index = index
        self.settings = settings
        self.locations = locations

    # ---------------------------------------------------------------------------------------------- build

    @classmethod
    def train(cls, maps: Tensor | np.ndarray, settings: FirstStageSettings, seed: int = 0) -> LocationIndex:
        """An empty index whose coarse centroids and codebooks are trained on location vectors of `maps`
        (entries drawn at random, at most `lists` x 40 vectors)."""
        faiss = faiss_module()
        n, channels = maps.shape[:2]
        locations = int(np.prod(maps.shape[2:]))
        wanted = settings.lists * _TRAIN_PER_LIST
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.choice(n, size=min(n, -(-wanted // locations)), replace=False))
        sample = location_rows(np.stack([np.asarray(maps[i]) for i in picked]))
        if len(sample) < settings.lists:
            raise QAConvError(f"a first stage with {settings.lists} lists needs at least that many location vectors")
        quantizer = faiss.IndexFlatIP(channels)
        index = faiss.IndexIVFPQFastScan(
            quantizer, channels, settings.lists, settings.sub_quantizers, 4, faiss.METRIC_INNER_PRODUCT
        )
        index.cp.seed = seed
        index.cp.niter = 10
        index.train(sample[rng.permutation(len(sample))[:wanted]])
        index.own_fields = True
        quantizer.this.disown()  # the index frees its quantizer
        return cls(index, settings, locations)

    @classmethod
    def build(
        cls,
        maps: Tensor | np.ndarray,
        settings: FirstStageSettings | None = None,
        seed: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> LocationIndex:
        """Train on `maps` ([N, C, H, W], memory-mapped is fine) and add all of them, a block at a time."""
        settings = settings or FirstStageSettings.for_gallery(len(maps), maps.shape[1], int(np.prod(maps.shape[2:])))
        index = cls.train(maps, settings, seed)
        index.add_all(maps, progress)
        return index

    def add_all(self, maps: Tensor | np.ndarray, progress: Callable[[int], None] | None = None) -> None:
        """Add every entry of `maps` (positions 0, 1, ...), a block at a time."""
        for start in range(0, len(maps), _ADD_BLOCK):
            self.add(maps[start : start + _ADD_BLOCK], start)
            if progress is not None:
                progress(min(len(maps), start + _ADD_BLOCK))

    def emptied(self) -> LocationIndex:
        """A copy with this index's centroids and codebooks but no vectors (to encode an updated gallery)."""
        faiss = faiss_module()
        clone = faiss.clone_index(self.index)
        clone.reset()
        return LocationIndex(clone, self.settings, self.locations)

    def add(self, maps: Tensor | np.ndarray, first: int) -> None:
        """Add the location vectors of `maps`, the entries at positions first, first + 1, ..."""
        rows = location_rows(maps)
        ids = np.repeat(np.arange(first, first + len(maps), dtype=np.int64), self.locations)
        self.index.add_with_ids(rows, ids)

    def remove(self, positions: list[int] | np.ndarray) -> None:
        """Drop the location vectors of the entries at `positions`."""
        faiss = faiss_module()
        positions = np.asarray(sorted(set(int(p) for p in positions)), dtype=np.int64)
        if len(positions):
            self.index.remove_ids(faiss.IDSelectorBatch(positions))

    @property
    def entries(self) -> int:
        return self.index.ntotal // self.locations

    # --------------------------------------------------------------------------------------------- search

    def candidates(self, query: Tensor, weight: Tensor, n: int | None = None) -> list[np.ndarray]:
        """For each query map ([Q, C, H, W]), the positions of its `n` (default: settings.candidates) best
        entries by the estimate, best first. `weight` [H*W] is QAConv's per-location weight, signed so that a
        higher weighted sum means a higher score."""
        n = n or self.settings.candidates
        self.index.nprobe = self.settings.probes
        k = self.settings.per_location
        similarities, found = self.index.search(location_rows(query), k)
        w = weight.detach().float().numpy()
        per_query = self.locations * k
        similarities = similarities.reshape(len(query), per_query)
        found = found.reshape(len(query), per_query)
        return [self._best_entries(similarities[q], found[q], w, k, n) for q in range(len(query))]

    def _best_entries(self, sims: np.ndarray, entries: np.ndarray, weight: np.ndarray, k: int, n: int) -> np.ndarray:
        """The `n` entries with the highest estimate from one query's fetched (similarity, entry) pairs,
        row s*k .. s*k+k-1 being query location s's, best first."""
        location = np.repeat(np.arange(self.locations), k)
        keep = entries >= 0  # faiss pads with -1 when a location found fewer than k
        fetched = np.where(keep, sims, np.inf).reshape(self.locations, k)
        floor = np.where(keep.reshape(self.locations, k).any(axis=1), fetched.min(axis=1), 0.0)  # the last fetched
        entries, sims, location = entries[keep], sims[keep], location[keep]
        key = entries * self.locations + location
        order = np.lexsort((-sims, key))  # by (entry, location), the best similarity first
        key, entries, sims, location = key[order], entries[order], sims[order], location[order]
        first = np.r_[True, key[1:] != key[:-1]]  # the best similarity of each (entry, location)
        entries, gain = entries[first], weight[location[first]] * (sims[first] - floor[location[first]])
        starts = np.flatnonzero(np.r_[True, entries[1:] != entries[:-1]])
        if len(starts) == 0:
            return np.empty(0, dtype=np.int64)
        totals = np.add.reduceat(gain, starts)
        unique = entries[starts]
        n = min(n, len(unique))
        best = np.argpartition(-totals, n - 1)[:n]
        return unique[best[np.argsort(-totals[best], kind="stable")]]

    # ---------------------------------------------------------------------------------------------- files

    def save(self, path: str | os.PathLike) -> None:
        faiss_module().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | os.PathLike, settings: FirstStageSettings, locations: int) -> LocationIndex:
        faiss = faiss_module()
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise QAConvError(f"{path} is damaged ({str(exc).splitlines()[0]}); re-build the index") from None
        return cls(index, settings, locations)

    def memory_bytes(self) -> int:
        """What the index holds: its codes and ids (the size of its file, within a few kilobytes)."""
        return self.index.ntotal * (self.settings.sub_quantizers // 2 + 8) + self.index.nlist * self.index.d * 4


def signed_weight(matcher: Any) -> Tensor:
    """QAConv's per-location weight, negated when the folded scale is negative (a higher weighted sum of best
    similarities then means a lower score)."""
    scorer = matcher.eval_affine()
    return scorer.weight * torch.sign(scorer.scale)


def path_of(root: str | os.PathLike) -> Path:
    return Path(root) / LOCATIONS_FILE
