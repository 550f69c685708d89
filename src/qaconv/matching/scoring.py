"""Memory-bounded all-pairs QAConv scoring.

The eval-mode matcher reduces to a matrix product of location rows followed by two max
reductions and two dot products (`EvalScorer`, from `QAConv.eval_affine`). Pairs are scored in tiles
whose similarity block fits the CPU cache (or a share of free GPU memory), so the
largest temporary is one tile, never P x G x hw x hw. Results come out in
[prob_block, gal_block] blocks that callers consume as they arrive (running top-k,
streaming ranking metrics) or collect into a P x G matrix with `pairwise_scores`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from qaconv.device import half_on_cuda
from qaconv.errors import QAConvError
from qaconv.matching.eval_scorer import EvalScorer, locations_by_row
from qaconv.matching.qaconv import QAConv

CPU_TILE_MIB = 8  # measured on the benchmark machine: tiles near L2+L3 size keep the GEMM near peak
GPU_TILE_MAX_MIB = 2048
_CPU_DTYPES = (torch.float32, torch.bfloat16)
_CUDA_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def tile_bytes(device: torch.device, tile_mib: float | None = None) -> int:
    """Bytes one similarity tile may take: the given size, else 8 MiB on CPU or 1/8 of free GPU memory."""
    if tile_mib is not None:
        if tile_mib <= 0:
            raise QAConvError(f"tile_mib must be positive, got {tile_mib}")
        return int(tile_mib * 2**20)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(min(free / 8, GPU_TILE_MAX_MIB * 2**20))
    return CPU_TILE_MIB * 2**20


def tile_shape(locations: int, itemsize: int, budget: int, max_prob: int, max_gal: int) -> tuple[int, int]:
    """(probes, galleries) per tile so that probes*galleries*locations^2*itemsize <= budget (at least 1x1)."""
    pairs = max(1, budget // (locations * locations * itemsize))
    probes = max(1, min(max_prob, math.isqrt(pairs)))
    galleries = max(1, min(max_gal, pairs // probes))
    return probes, galleries


def _check_dtype(dtype: torch.dtype, device: torch.device) -> None:
    allowed = _CUDA_DTYPES if device.type == "cuda" else _CPU_DTYPES
    if dtype not in allowed:
        names = ", ".join(str(d).removeprefix("torch.") for d in allowed)
        raise QAConvError(f"dtype {dtype} is not supported on {device.type}; use one of {names}")


def _check_block(value: int, name: str) -> int:
    if value <= 0:
        raise QAConvError(f"{name} must be a positive number of feature maps, got {value}")
    return value


def _matcher_device(matcher: QAConv) -> torch.device:
    return next(matcher.parameters()).device


@torch.inference_mode()
def _location_rows(maps: Tensor, device: torch.device, dtype: torch.dtype) -> Tensor:
    return locations_by_row(maps.detach().to(device=device, dtype=dtype))


@torch.inference_mode()
def _score_block_into(
    out: Tensor, scorer: EvalScorer, prob_rows: Tensor, gal_rows: Tensor, tile: tuple[int, int]
) -> Tensor:
    """Write the scores [p, g] of all pairs of two blocks of location rows, one tile of pairs at a time."""
    hw = scorer.locations
    num_prob, num_gal = out.shape
    tile_prob, tile_gal = tile
    for p0 in range(0, num_prob, tile_prob):
        p1 = min(p0 + tile_prob, num_prob)
        a = prob_rows[p0 * hw : p1 * hw]
        for g0 in range(0, num_gal, tile_gal):
            g1 = min(g0 + tile_gal, num_gal)
            out[p0:p1, g0:g1] = scorer.tile(a, gal_rows[g0 * hw : g1 * hw])
    return out


def score_blocks(
    matcher: QAConv,
    prob: Tensor,
    gal: Tensor,
    *,
    prob_block: int = 256,
    gal_block: int = 4096,
    tile_mib: float | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Iterator[tuple[int, int, Tensor]]:
    """Yield (prob_start, gal_start, scores) for all prob x gal pairs in row-major block order.

    `scores` is a float32 [<=prob_block, <=gal_block] tensor on `device` (default: the matcher's)
    holding the eval-mode QAConv logits (running batch-norm statistics, whatever the matcher's
    mode). Inputs may live anywhere (CPU, memory-mapped, GPU); each block is moved to `device`
    and cast to `dtype` (float32/bfloat16 on CPU; float16 default, bfloat16 or float32 on CUDA).
    Peak extra memory: one tile (`tile_mib`) plus one output block and the blocks' location rows.
    """
    matcher.check_maps(prob, "prob")
    matcher.check_maps(gal, "gal")
    _check_block(prob_block, "prob_block")
    _check_block(gal_block, "gal_block")
    device = torch.device(device) if device is not None else _matcher_device(matcher)
    dtype = dtype or half_on_cuda(device)
    _check_dtype(dtype, device)
    scorer = matcher.eval_affine().to(device)
    itemsize = torch.empty((), dtype=dtype).element_size()
    tile = tile_shape(scorer.locations, itemsize, tile_bytes(device, tile_mib), prob_block, gal_block)
    for p0 in range(0, len(prob), prob_block):
        prob_rows = _location_rows(prob[p0 : p0 + prob_block], device, dtype)
        for g0 in range(0, len(gal), gal_block):
            gal_rows = _location_rows(gal[g0 : g0 + gal_block], device, dtype)
            # allocated outside inference mode: callers may modify the block in place
            out = torch.empty(len(prob_rows) // scorer.locations, len(gal_rows) // scorer.locations, device=device)
            yield p0, g0, _score_block_into(out, scorer, prob_rows, gal_rows, tile)


def pairwise_scores(
    matcher: QAConv,
    prob: Tensor,
    gal: Tensor,
    *,
    prob_block: int = 256,
    gal_block: int = 4096,
    tile_mib: float | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """All eval-mode QAConv logits [P, G] (float32, on prob's device), computed block by block.

    Equal to `matcher.eval()(prob, gal)` within the dtype's rounding; see `score_blocks` for
    the arguments and the memory bound.
    """
    scores = torch.empty(len(prob), len(gal), device=prob.device if isinstance(prob, Tensor) else "cpu")
    for p0, g0, block in score_blocks(
        matcher, prob, gal, prob_block=prob_block, gal_block=gal_block, tile_mib=tile_mib, dtype=dtype, device=device
    ):
        scores[p0 : p0 + block.shape[0], g0 : g0 + block.shape[1]] = block
    return scores


@torch.inference_mode()
def pair_scores(
    matcher: QAConv, prob: Tensor, gal: Tensor, *, dtype: torch.dtype | None = None, device: torch.device | None = None
) -> Tensor:
    """Eval-mode QAConv scores of the pairs (prob[i], gal[i]) -> float32 [n] (not all pairs: a diagonal).

    The same score chain as `score_blocks` (`EvalScorer.aligned`), batched so one similarity chunk fits the
    tile budget. Re-ranking uses it for the few dozen pairs per item that its neighbour lists do not hold.
    """
    matcher.check_maps(prob, "prob")
    matcher.check_maps(gal, "gal")
    if len(prob) != len(gal):
        raise QAConvError(f"pair_scores needs as many probe as gallery maps, got {len(prob)} and {len(gal)}")
    device = torch.device(device) if device is not None else _matcher_device(matcher)
    dtype = dtype or torch.float32
    _check_dtype(dtype, device)
    scorer = matcher.eval_affine().to(device)
    itemsize = torch.empty((), dtype=dtype).element_size()
    chunk = max(1, tile_bytes(device) // (scorer.locations**2 * itemsize))
    out = torch.empty(len(prob), device=device)
    for s in range(0, len(prob), chunk):
        out[s : s + chunk] = scorer.aligned(prob[s : s + chunk].to(device, dtype), gal[s : s + chunk].to(device, dtype))
    return out
