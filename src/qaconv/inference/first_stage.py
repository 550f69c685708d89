"""The first stage of gallery search: candidates from the gallery's location vectors, re-scored by QAConv.

QAConv's score is a learned sum over locations of each location's best match in the other image (late
interaction, as in ColBERT-style retrieval), so its first stage works on location vectors too, as PLAID does.
Every location vector of every gallery map is replaced by the nearest of `lists` centroids (spherical k-means):
the index holds each entry's centroid ids and, per centroid, the entries that use it (an inverted list). A query
goes through three steps, each cheaper per entry than the next:

1. votes: each query location s takes its `probes` most similar centroids; every entry in their inverted lists
   gets weight[s] * (sim(s, centroid) - sim(s, the next centroid)), summed; the `shortlist` entries with the
   most votes go on;
2. centroid interaction: for them, QAConv's two-sided score with each gallery location replaced by its
   centroid, sum over s of weight[s] * max over the entry's locations t of sim(s, centroid(t)), plus sum over
   t of weight[t] * max over s of the same similarity;
3. the `candidates` entries with the highest interaction are re-scored exactly by QAConv.

`FirstStageSettings.for_gallery` picks the depths from the gallery's size; benchmarks/bench_search.py measures
their recall against exhaustive QAConv (docs/inference.md#the-first-stage). The index takes about 6 bytes per
location (a 2-byte centroid id and a 4-byte inverted-list entry), under a twentieth of the float16 maps.

faiss-cpu (an optional extra, `pip install qaconv[faiss]`) trains the centroids: without it a new index gets no
first stage and search is exhaustive (or uses the global descriptors' shortlist). Searching and updating an
index that has one need only torch and NumPy.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from qaconv.errors import QAConvError

LOCATIONS_FILE = "locations.npz"
#: Galleries from this many entries get a first stage when it is `auto` (smaller ones are searched exhaustively
#: in well under a second per query on 2 cores).
AUTO_MIN_ENTRIES = 50_000
_TRAIN_PER_LIST = 40  # training vectors per centroid (faiss warns below 39)
_ADD_BLOCK = 4096  # entries assigned at a time while building
_ASSIGN_ROWS = 256  # location vectors compared with every centroid at once without faiss (fastest in cache)
_INTERACTION_BYTES = 2**18  # the running maxima of a block of shortlisted entries stay in the cache


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
    """The centroids of a location index and the depth of its search (the module docstring's three steps).

    lists: centroids; probes: centroids per query location whose entries get votes; shortlist: entries ranked by
    centroid interaction; candidates: entries re-scored exactly by QAConv per query.
    """

    lists: int
    probes: int
    shortlist: int
    candidates: int

    @classmethod
    def for_gallery(cls, entries: int, channels: int, locations: int) -> FirstStageSettings:
        """Settings for a gallery of `entries` maps of `channels` x `locations`: about sqrt(vectors) centroids
        (at most 4,096, so that training stays within seconds on 2 cores), 4 probes, a shortlist that grows
        2.5x per tenfold of the gallery (4,000 at 100,000 entries, 10,000 at 1,000,000), and 400 candidates, 200
        for maps whose exact score costs over 16 times the demo's (64 x 8 x 4): docs/inference.md#the-first-stage
        measures the trade-off."""
        vectors = max(1, entries * locations)
        lists = int(min(4096, max(16, 2 ** round(math.log2(math.sqrt(vectors))))))
        lists = min(lists, max(2, vectors // _TRAIN_PER_LIST))
        shortlist = round(1000 * 2.5 ** (math.log10(max(entries, 1)) - 3.5), -2)
        candidates = 400 if channels * locations**2 <= 16 * 64 * 32**2 else 200
        return cls(
            lists=lists,
            probes=min(lists - 1, 4),
            shortlist=int(min(entries, max(shortlist, candidates))),
            candidates=int(min(entries, candidates)),
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
    """A gallery's location vectors as centroid ids ([entries, locations]) and inverted lists; `candidates`
    ranks entries for a query by the three steps of the module docstring."""

    def __init__(self, centroids: np.ndarray, codes: np.ndarray, settings: FirstStageSettings) -> None:
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.codes = codes
        self.settings = settings
        self._lists: tuple[np.ndarray, np.ndarray] | None = None

    # ---------------------------------------------------------------------------------------------- build

    @classmethod
    def train(cls, maps: Tensor | np.ndarray, settings: FirstStageSettings, seed: int = 0) -> LocationIndex:
        """An empty index whose centroids are trained (spherical k-means) on location vectors of `maps`
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
        kmeans = faiss.Kmeans(channels, settings.lists, niter=10, seed=seed, spherical=True)
        kmeans.train(sample[rng.permutation(len(sample))[:wanted]])
        return cls(kmeans.centroids, np.empty((0, locations), dtype=_code_type(settings.lists)), settings)

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
        """Append every entry of `maps`, each location as its nearest centroid, a block at a time."""
        nearest = nearest_centroid(self.centroids)
        codes = np.empty((len(maps), self.locations), dtype=self.codes.dtype)
        for start in range(0, len(maps), _ADD_BLOCK):
            rows = location_rows(maps[start : start + _ADD_BLOCK])
            codes[start : start + len(rows) // self.locations] = nearest(rows).reshape(-1, self.locations)
            if progress is not None:
                progress(min(len(maps), start + _ADD_BLOCK))
        self.codes = np.concatenate([self.codes, codes])
        self._lists = None

    def emptied(self) -> LocationIndex:
        """A copy with this index's centroids but no entries (to encode an updated gallery)."""
        return LocationIndex(self.centroids, self.codes[:0], self.settings)

    @property
    def entries(self) -> int:
        return len(self.codes)

    @property
    def locations(self) -> int:
        return self.codes.shape[1]

    def inverted_lists(self) -> tuple[np.ndarray, np.ndarray]:
        """(entries, offsets): the entries using centroid c, each once and in order, are
        entries[offsets[c]:offsets[c + 1]]. Built from the codes on first use (a stable sort)."""
        if self._lists is None:
            flat = self.codes.ravel()
            order = np.argsort(flat, kind="stable")
            owner = (order // self.locations).astype(np.int32)
            sorted_codes = flat[order]
            distinct = np.r_[True, (sorted_codes[1:] != sorted_codes[:-1]) | (owner[1:] != owner[:-1])]
            owner, sorted_codes = owner[distinct], sorted_codes[distinct]
            offsets = np.searchsorted(sorted_codes, np.arange(len(self.centroids) + 1))
            self._lists = owner, offsets
        return self._lists

    # --------------------------------------------------------------------------------------------- search

    def candidates(self, query: Tensor, weight: Tensor, n: int | None = None) -> list[np.ndarray]:
        """For each query map ([Q, C, H, W]), the positions of its `n` (default: settings.candidates) best
        entries by centroid interaction, best first. `weight` [H*W] is QAConv's per-location weight, signed so
        that a higher weighted sum means a higher score."""
        n = min(n or self.settings.candidates, self.entries)
        w = weight.detach().float()
        centroids = torch.from_numpy(self.centroids)
        rows = torch.from_numpy(location_rows(query)).view(len(query), self.locations, -1)

        def one(q: int) -> np.ndarray:
            return self._best_entries(rows[q] @ centroids.T, w, n)

        workers = min(len(query), torch.get_num_threads())
        if workers <= 1:
            return [one(q) for q in range(len(query))]
        with ThreadPoolExecutor(workers) as pool:  # the steps are mostly single-threaded and release the GIL
            return list(pool.map(one, range(len(query))))

    def _best_entries(self, similarity: Tensor, weight: Tensor, n: int) -> np.ndarray:
        """The `n` best entries for one query, from its locations' similarities to every centroid [L, lists]."""
        shortlist = self.shortlist(similarity, weight, max(n, self.settings.shortlist))
        interaction = self.interaction(similarity, weight, shortlist)
        best = torch.topk(interaction, min(n, len(shortlist))).indices
        return shortlist[best.numpy()]

    def shortlist(self, similarity: Tensor, weight: Tensor, size: int) -> np.ndarray:
        """The `size` entries with the most votes (step 1 of the module docstring)."""
        if size >= self.entries:
            return np.arange(self.entries)
        owners, offsets = self.inverted_lists()
        probes = min(self.settings.probes, similarity.shape[1] - 1)
        top = torch.topk(similarity, probes + 1, dim=1)  # sorted: the last is each location's floor
        gain = (weight[:, None] * (top.values[:, :probes] - top.values[:, probes:])).ravel().numpy()
        lists = top.indices[:, :probes].ravel().numpy()
        voters = torch.from_numpy(np.concatenate([owners[offsets[c] : offsets[c + 1]] for c in lists]))
        gains = torch.from_numpy(np.repeat(gain, offsets[lists + 1] - offsets[lists]))
        return largest(torch.zeros(self.entries).index_add_(0, voters, gains).numpy(), size)

    def interaction(self, similarity: Tensor, weight: Tensor, entries: np.ndarray) -> Tensor:
        """QAConv's score, up to its affine map, with each gallery location replaced by its centroid (step 2): the
        query-to-gallery half, sum over query locations s of weight[s] * the best similarity of s to the entry's
        centroids, plus the gallery-to-query half, sum over the entry's locations t of weight[t] * the best
        similarity of t's centroid to a query location.

        The similarities are quantised to 256 levels between their minimum and maximum (a step of under a
        hundredth for unit vectors), so that the running maximum over an entry's locations moves bytes."""
        low, high = similarity.min(), similarity.max()
        step = torch.clamp(high - low, min=1e-6) / 255
        levels = ((similarity - low) / step).round().to(torch.uint8).T.contiguous()  # [lists, L]
        best_query_location = levels.amax(dim=1)  # [lists]
        out = torch.empty(len(entries))
        size = max(64, _INTERACTION_BYTES // self.locations)
        for start in range(0, len(entries), size):
            block = self.codes[entries[start : start + size]]
            codes = torch.from_numpy(block.T.astype(np.int64, order="C"))  # [L, block]: a row per gallery location
            best = levels.index_select(0, codes[0])
            for location in codes[1:]:  # the running maximum over the entry's locations, per query location
                torch.maximum(best, levels.index_select(0, location), out=best)
            query_to_gallery = best.float() @ weight
            gallery_to_query = weight @ best_query_location[codes].float()
            out[start : start + len(block)] = query_to_gallery + gallery_to_query
        return out * step + 2 * low * weight.sum()

    # ---------------------------------------------------------------------------------------------- files

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "wb") as file:
            np.savez(file, centroids=self.centroids, codes=self.codes)

    @classmethod
    def load(cls, path: str | os.PathLike, settings: FirstStageSettings, locations: int) -> LocationIndex:
        try:
            with np.load(path) as data:
                centroids, codes = data["centroids"], data["codes"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise QAConvError(f"{path} is damaged ({str(exc).splitlines()[0]}); re-build the index") from None
        if codes.ndim != 2 or codes.shape[1] != locations or len(centroids) != settings.lists:
            raise QAConvError(f"{path} does not match the index's maps or settings; re-build the index")
        return cls(centroids, codes, settings)

    def memory_bytes(self) -> int:
        """What the index holds in memory: centroid ids, inverted lists and centroids."""
        owners, offsets = self.inverted_lists()
        return self.codes.nbytes + owners.nbytes + offsets.nbytes + self.centroids.nbytes


def nearest_centroid(centroids: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function from location rows [n, C] to the position of each one's most similar centroid: faiss's blocked
    search when it is installed (3 times faster on 2 cores), else matrix products in blocks of rows."""
    if faiss_available():
        flat = faiss_module().IndexFlatIP(centroids.shape[1])
        flat.add(centroids)
        return lambda rows: flat.search(rows, 1)[1].ravel()
    by_column = torch.from_numpy(centroids).T

    def nearest(rows: np.ndarray) -> np.ndarray:
        parts = torch.from_numpy(rows).split(_ASSIGN_ROWS)
        return torch.cat([(part @ by_column).argmax(dim=1) for part in parts]).numpy()

    return nearest


def largest(values: np.ndarray, size: int, stride: int = 16) -> np.ndarray:
    """The positions of the `size` largest of `values` (in no order). Only the values above a threshold are
    partitioned: the threshold is where every `stride`-th value places twice `size` above it, so that about
    a 20th of a big array is sorted; when fewer pass it, the whole array is."""
    if size >= len(values):
        return np.arange(len(values))
    sample = values[::stride]
    rank = 2 * size // stride
    if rank < len(sample):
        threshold = np.partition(sample, len(sample) - 1 - rank)[len(sample) - 1 - rank]
        passed = np.flatnonzero(values >= threshold)
        if len(passed) >= size:
            return passed[np.argpartition(values[passed], len(passed) - size)[len(passed) - size :]]
    return np.argpartition(values, len(values) - size)[len(values) - size :]


def _code_type(lists: int) -> type:
    return np.int16 if lists <= np.iinfo(np.int16).max else np.int32


def signed_weight(matcher: Any) -> Tensor:
    """QAConv's per-location weight, negated when the folded scale is negative (a higher weighted sum of best
    similarities then means a lower score)."""
    scorer = matcher.eval_affine()
    return scorer.weight * torch.sign(scorer.scale)


def path_of(root: str | os.PathLike) -> Path:
    return Path(root) / LOCATIONS_FILE
