"""Gallery search on feature maps: exhaustive QAConv, or a global-descriptor shortlist re-scored by QAConv.

Exhaustive search streams `score_blocks` over the gallery maps (memory-mapped for an index) and
keeps a running top-k (`qaconv.matching.topk`), so memory does not grow with the gallery.
Two-stage search ranks the gallery by the cosine similarity of the global descriptors (faiss when
installed, a torch matmul otherwise) and re-scores only the `shortlist` best candidates per query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from qaconv.errors import QAConvError
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
    prob_block: int = 64,
    gal_block: int = 4096,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """(indices, scores), both [Q, min(topk, G)], best first (ties: lower gallery index first).

    Exhaustive QAConv over all query x gallery pairs when `shortlist_size` is None; otherwise each
    query re-scores only its `shortlist_size` nearest gallery entries by global descriptor
    (`gallery_descriptors`, computed from the maps when not given).
    """
    matcher.check_maps(query, "query")
    matcher.check_maps(gallery, "gallery")
    if topk < 1:
        raise QAConvError(f"--topk must be at least 1, got {topk}")
    if len(gallery) == 0:
        raise QAConvError("the gallery is empty")
    k = min(topk, len(gallery))
    kwargs = {"prob_block": prob_block, "gal_block": gal_block, "dtype": dtype, "device": device}
    if shortlist_size is None:
        blocks = score_blocks(matcher, query, gallery, **kwargs)
        indices, scores = running_topk(blocks, len(query), k, exclude_self=False)
        return indices.cpu(), scores.cpu()
    if shortlist_size < k:
        raise QAConvError(f"--shortlist ({shortlist_size}) must be at least --topk ({topk})")
    if gallery_descriptors is None:
        gallery_descriptors = global_descriptors(gallery)
    candidates = shortlist(global_descriptors(query), gallery_descriptors, shortlist_size).sort(dim=1).values
    indices = torch.empty(len(query), k, dtype=torch.long)
    scores = torch.empty(len(query), k)
    for i, cand in enumerate(candidates):
        rescored = torch.cat([b for _, _, b in score_blocks(matcher, query[i : i + 1], gallery[cand], **kwargs)], 1)
        best, top = topk_columns(rescored.cpu(), k)  # ties: the lower column, so the lower index (cand is sorted)
        indices[i], scores[i] = cand[best[0]], top[0]
    return indices, scores
