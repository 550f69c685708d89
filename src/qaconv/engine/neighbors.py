"""Neighbour tables for the Graph Sampler: the k nearest other classes of every class, in O(C*k) memory.

A builder returns `neighbors_fn(sample_indices, k) -> LongTensor[C, k]` for
`qaconv.data.samplers.GraphSampler`: it gets the feature maps of one representative sample per
class from `extract_fn`, scores them all against each other block by block, and keeps only a
running top-k per class (`qaconv.matching.topk`). The published sampler held the dense C x C
distance matrix (plus a C x C identity) instead, which is 40 GB each at 100k classes.

- `qaconv_neighbors_fn`: QAConv logits (eval mode, running batch-norm statistics), as in the paper.
- `embedding_neighbors_fn`: cosine similarity of global-average-pooled, L2-normalised features,
  for backbones without a pairwise matcher.

Ties are broken by the lower class index and a class is never its own neighbour, so the table is
deterministic. Under torch.distributed (initialised, world size > 1) each rank scores a contiguous
share of the probe rows against all classes and the rows are all-gathered, so every rank returns
the same table; `extract_fn` is called on every rank and must return the same maps there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from qaconv.errors import QAConvError
from qaconv.matching import QAConv, score_blocks
from qaconv.matching.topk import ScoreBlocks, running_topk

ExtractFn = Callable[[Tensor], Tensor]
NeighborsFn = Callable[[Tensor, int], Tensor]


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def neighbor_table(num: int, k: int, score_rows: Callable[[int, int], ScoreBlocks], device: torch.device) -> Tensor:
    """[num, k] CPU LongTensor of the k best other columns per row, rows shared among ranks.

    `score_rows(lo, hi)` yields the score blocks of rows lo..hi-1 against all `num` columns, with
    row starts relative to lo. Each rank takes a contiguous share of rows; the shares are all-gathered.
    """
    if not 0 < k < num:
        raise QAConvError(f"asked for k={k} nearest classes among {num}: k must be in [1, {num - 1}]")
    rank, world = _rank_and_world()
    bounds = [r * num // world for r in range(world + 1)]
    lo, hi = bounds[rank], bounds[rank + 1]
    if hi > lo:
        mine, _ = running_topk(score_rows(lo, hi), hi - lo, k, row_offset=lo)
    else:
        mine = torch.empty((0, k), dtype=torch.int64, device=device)
    if world == 1:
        return mine.cpu()
    comm_device = torch.device("cpu") if dist.get_backend() == "gloo" else mine.device
    share = -(-num // world)
    padded = torch.full((share, k), -1, dtype=torch.int64, device=comm_device)
    padded[: hi - lo] = mine
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[: bounds[r + 1] - bounds[r]] for r, part in enumerate(parts)]).cpu()


def _extract(extract_fn: ExtractFn, sample_indices: Tensor) -> Tensor:
    maps = extract_fn(sample_indices)
    if not isinstance(maps, Tensor) or len(maps) != len(sample_indices):
        raise QAConvError(
            f"extract_fn must return a tensor with one row per sample ({len(sample_indices)}), "
            f"got {type(maps).__name__} of length {len(maps) if hasattr(maps, '__len__') else '?'}"
        )
    return maps


def _check_block_size(block_size: int) -> None:
    if block_size < 1:
        raise QAConvError(f"block_size must be a positive number of classes, got {block_size}")


def qaconv_neighbors_fn(
    extract_fn: ExtractFn,
    matcher: QAConv,
    block_size: int = 1024,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> NeighborsFn:
    """neighbors_fn from QAConv logits of the representatives' feature maps (the paper's graph).

    `extract_fn(sample_indices) -> [C, Cf, H, W]` gives the maps (the caller runs the model in
    eval mode with the test transform). Scores are the matcher's eval-mode logits (running
    batch-norm statistics, whatever its mode) from `qaconv.matching.score_blocks`, computed in
    block_size x block_size blocks on `device` (default: the matcher's) in `dtype` (default:
    float16 on CUDA, float32 on CPU). Memory beyond the maps: C*k running keys plus one block.
    """
    _check_block_size(block_size)

    def neighbors(sample_indices: Tensor, k: int) -> Tensor:
        maps = _extract(extract_fn, sample_indices)
        matcher.check_maps(maps, "extract_fn output")
        target = torch.device(device) if device is not None else next(matcher.parameters()).device

        def score_rows(lo: int, hi: int) -> Iterator[tuple[int, int, Tensor]]:
            return score_blocks(
                matcher, maps[lo:hi], maps, prob_block=block_size, gal_block=block_size, dtype=dtype, device=target
            )

        with torch.no_grad():
            return neighbor_table(len(maps), k, score_rows, target)

    return neighbors


def embedding_neighbors_fn(
    extract_fn: ExtractFn, block_size: int = 4096, device: torch.device | str | None = None
) -> NeighborsFn:
    """neighbors_fn from the cosine similarity of pooled embeddings, for any backbone.

    `extract_fn(sample_indices)` returns [C, D] embeddings or [C, D, H, W] maps, which are
    global-average pooled; both are L2-normalised and compared in float32 on `device` (default:
    where the features are), block_size x block_size at a time. Memory beyond the features:
    C*D floats, C*k running keys and one block.
    """
    _check_block_size(block_size)

    def neighbors(sample_indices: Tensor, k: int) -> Tensor:
        feats = _extract(extract_fn, sample_indices)
        if feats.dim() == 4:
            feats = feats.mean(dim=(2, 3), dtype=torch.float32)
        elif feats.dim() != 2:
            raise QAConvError(f"extract_fn output: expected [C, D] or [C, D, H, W], got {list(feats.shape)}")
        target = torch.device(device) if device is not None else feats.device
        emb = F.normalize(feats.detach().to(device=target, dtype=torch.float32), dim=1)
        num = len(emb)

        def score_rows(lo: int, hi: int) -> Iterator[tuple[int, int, Tensor]]:
            for p in range(lo, hi, block_size):
                prob = emb[p : min(p + block_size, hi)]
                for g in range(0, num, block_size):
                    yield p - lo, g, prob @ emb[g : g + block_size].T

        with torch.no_grad():
            return neighbor_table(num, k, score_rows, target)

    return neighbors
