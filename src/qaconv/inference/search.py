"""Gallery search on feature maps: exhaustive QAConv, or a first stage's candidates re-scored by QAConv.

Exhaustive search streams `score_blocks` over the gallery maps (memory-mapped for an index) and
keeps a running top-k (`qaconv.matching.topk`), so memory does not grow with the gallery.
Two-stage search takes each query's candidates from a first stage and re-scores only them exactly: the
location first stage of an index (`qaconv.inference.first_stage`, which agrees with QAConv), or the cosine
similarity of the global descriptors (faiss when installed, a torch matmul otherwise; cheaper but it misses
much of what QAConv ranks first, docs/inference.md#the-first-stage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from qaconv.errors import QAConvError
from qaconv.inference.first_stage import LocationIndex, signed_weight
from qaconv.matching import QAConv, score_blocks
from qaconv.matching.topk import running_topk, topk_columns

_DESCRIPTOR_BLOCK = 4096
_SHORTLIST_FLOATS = 2**24


@dataclass(frozen=True)
class SearchResult:
    """Ranked gallery entries per query: indices and QAConv scores [Q, k] (best first), paths if known."""

    indices: Tensor
    scores: Tensor
    paths: list[list[str]] | None = None


@torch.no_grad()
def global_descriptors(maps: Tensor, block: int = _DESCRIPTOR_BLOCK) -> Tensor:
    """[N, C, h, w] maps -> [N, C] float32: the mean over locations, L2-normalised (the cheap first stage)."""
    out = torch.empty(len(maps), maps.shape[1])
    for start in range(0, len(maps), block):
        out[start : start + block] = maps[start : start + block].float().mean(dim=(2, 3))
    return F.normalize(out, dim=1)


def shortlist(query_descriptors: Tensor, gallery_descriptors: Tensor, n: int) -> Tensor:
    """[Q, n] gallery indices with the highest descriptor cosine similarity per query (faiss if installed).

    Without faiss, queries go in chunks whose similarity rows take at most 64 MiB, then torch.topk.
    """
    n = min(n, len(gallery_descriptors))
    q = query_descriptors.float().contiguous()
    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is not None:
        flat = faiss.IndexFlatIP(q.shape[1])
        flat.add(np.ascontiguousarray(gallery_descriptors.float().numpy()))
        _, found = flat.search(np.ascontiguousarray(q.numpy()), n)
        return torch.from_numpy(found).long()
    gallery_descriptors = gallery_descriptors.float()
    rows = max(1, _SHORTLIST_FLOATS // len(gallery_descriptors))
    return torch.cat([(q[i : i + rows] @ gallery_descriptors.T).topk(n, dim=1).indices for i in range(0, len(q), rows)])


@torch.no_grad()
def search(
    matcher: QAConv,
    query: Tensor,
    gallery: Tensor,
    topk: int = 10,
    *,
    shortlist_size: int | None = None,
    gallery_descriptors: Tensor | None = None,
    first_stage: LocationIndex | None = None,
    prob_block: int = 64,
    gal_block: int = 4096,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """(indices, scores), both [Q, min(topk, G)], best first (ties: lower gallery index first).

    With `first_stage` (the gallery's location index), each query re-scores the first stage's candidates
    (`shortlist_size` of them, default its own setting). Without one: exhaustive QAConv over all query x gallery
    pairs when `shortlist_size` is None, else each query re-scores its `shortlist_size` nearest gallery entries
    by global descriptor (`gallery_descriptors`, computed from the maps when not given).
    """
    matcher.check_maps(query, "query")
    matcher.check_maps(gallery, "gallery")
    if topk < 1:
        raise QAConvError(f"--topk must be at least 1, got {topk}")
    if len(gallery) == 0:
        raise QAConvError("the gallery is empty")
    k = min(topk, len(gallery))
    kwargs = {"prob_block": prob_block, "gal_block": gal_block, "dtype": dtype, "device": device}
    if shortlist_size is not None and shortlist_size < k:
        raise QAConvError(f"--shortlist ({shortlist_size}) must be at least --topk ({topk})")
    if first_stage is None and shortlist_size is None:
        return exhaustive(matcher, query, gallery, k, kwargs)
    if first_stage is not None:
        found = first_stage.candidates(query, signed_weight(matcher), shortlist_size)
        candidates = [torch.from_numpy(np.sort(c)) for c in found]
    else:
        descriptors = global_descriptors(gallery) if gallery_descriptors is None else gallery_descriptors
        candidates = list(shortlist(global_descriptors(query), descriptors, shortlist_size).sort(dim=1).values)
    indices = torch.empty(len(query), k, dtype=torch.long)
    scores = torch.empty(len(query), k)
    for i, cand in enumerate(candidates):
        if len(cand) < k:  # the first stage found fewer entries than asked for: this query is searched in full
            indices[i : i + 1], scores[i : i + 1] = exhaustive(matcher, query[i : i + 1], gallery, k, kwargs)
            continue
        rescored = torch.cat([b for _, _, b in score_blocks(matcher, query[i : i + 1], gallery[cand], **kwargs)], 1)
        best, top = topk_columns(rescored.cpu(), k)  # ties: the lower column, so the lower index (cand is sorted)
        indices[i], scores[i] = cand[best[0]], top[0]
    return indices, scores


def exhaustive(matcher: QAConv, query: Tensor, gallery: Tensor, k: int, kwargs: dict) -> tuple[Tensor, Tensor]:
    """The top `k` (indices, scores) [Q, k] of every query over the whole gallery."""
    indices, scores = running_topk(score_blocks(matcher, query, gallery, **kwargs), len(query), k, exclude_self=False)
    return indices.cpu(), scores.cpu()


@torch.no_grad()
def score_all(matcher: QAConv, query: Tensor, galleries: list[Tensor], **kwargs: object) -> np.ndarray:
    """One query's QAConv scores against every entry of `galleries` (maps of shards, in order) as one float32
    vector: the gallery is streamed in blocks, so memory holds the vector and one block."""
    parts = [
        torch.cat([block[0] for *_, block in score_blocks(matcher, query[:1], maps, **kwargs)]) for maps in galleries
    ]
    return torch.cat(parts).cpu().numpy()


def judged_ranks(scores: np.ndarray, truth: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """The 1-based ranks of the positions `truth` when the gallery is sorted by score (ties: the lower position
    first) and the positions `ignore` are left out, as the evaluation protocol ranks them."""
    judged = np.ones(len(scores), dtype=bool)
    judged[ignore] = False
    positions = np.flatnonzero(judged)
    order = positions[np.lexsort((positions, -scores[positions]))]
    rank = np.empty(len(scores), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    return rank[truth]
