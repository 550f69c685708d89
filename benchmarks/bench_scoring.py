"""All-pairs QAConv scoring: `pairwise_scores` against a naive einsum and the machine's GEMM peak.

Feature maps have the paper's shape (128 x 24 x 8, so 192 locations). One pair costs
2 * 192^2 * 128 FLOPs in the location-pair matrix product; the max reductions and dot
products are not counted. The naive version is the published code's arithmetic: one einsum
to a [P, G, hw, hw] tensor, both max reductions, batch norm, linear layer and logit batch norm.
`--device cuda` times the GPU (float32, float16 = the published evaluation's precision, bfloat16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.common import best_time, parse_args, peak_extra_mib, results_name, save
from qaconv.matching import QAConv, pairwise_scores

C, H, W = 128, 24, 8
HW = H * W
FLOP_PER_PAIR = 2 * HW * HW * C


def random_maps(n: int, seed: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, C, H, W, generator=g), dim=1).to(device)


def naive_scores(matcher: QAConv, prob: torch.Tensor, gal: torch.Tensor) -> torch.Tensor:
    """The published forward: einsum to all location pairs at once, then the matcher's layers."""
    with torch.inference_mode():
        p, g = prob.view(len(prob), C, HW), gal.view(len(gal), C, HW)
        sim = torch.einsum("pcs,gcr->pgrs", p, g)
        x = torch.cat((sim.max(dim=2)[0], sim.max(dim=3)[0]), dim=-1)
        x = matcher.bn(x.view(-1, 1, HW)).view(-1, HW)
        x = matcher.fc(x).view(-1, 2).sum(1, keepdim=True)
        return matcher.logit_bn(x).view(len(prob), len(gal))


def gemm_gflops(dtype: torch.dtype, device: torch.device, repeat: int) -> float:
    n = 2048 if device.type == "cpu" else 8192
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / best_time(lambda: a @ b, repeat=repeat, device=device) / 1e9


def peak_memory_mib(fn, device: torch.device) -> float:
    """Extra memory of one call: resident memory on the CPU, allocated device memory on CUDA."""
    if device.type != "cuda":
        return peak_extra_mib(fn)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def main() -> None:
    args = parse_args(__doc__, "fewer repeats and a smaller memory probe")
    device = args.device
    cuda = device.type == "cuda"
    repeat = 1 if args.quick and not cuda else 3
    torch.manual_seed(0)
    matcher = QAConv(C, H, W).eval().to(device)
    n = 384 if cuda else 96  # the naive [P, G, hw, hw] float32 tensor: 21 GiB on CUDA, 1.3 GiB on the CPU
    prob, gal = random_maps(n, 1, device), random_maps(n, 2, device)
    pairs = n * n
    dtypes = [torch.float32, torch.float16, torch.bfloat16] if cuda else [torch.float32, torch.bfloat16]
    peaks = {dtype: gemm_gflops(dtype, device, repeat) for dtype in dtypes}
    naive_s = best_time(lambda: naive_scores(matcher, prob, gal), repeat=repeat, device=device)
    naive_pps = pairs / naive_s
    rows = [{"case": "naive einsum float32", "pairs/s": naive_pps, "GFLOP/s": naive_pps * FLOP_PER_PAIR / 1e9}]
    rows[0].update({"vs naive": 1.0, "vs peak": rows[0]["GFLOP/s"] / peaks[torch.float32]})
    for dtype in dtypes:
        name = str(dtype).removeprefix("torch.")
        run = lambda dtype=dtype: pairwise_scores(matcher, prob, gal, dtype=dtype)  # noqa: E731
        seconds = best_time(run, repeat=repeat, device=device)
        gflops = pairs * FLOP_PER_PAIR / seconds / 1e9
        row = {"case": f"pairwise_scores {name}", "pairs/s": pairs / seconds, "GFLOP/s": gflops}
        rows.append({**row, "vs naive": (pairs / seconds) / naive_pps, "vs peak": gflops / peaks[dtype]})
    for dtype, gflops in peaks.items():
        rows.append({"case": f"gemm peak {str(dtype).removeprefix('torch.')}", "GFLOP/s": gflops, "vs peak": 1.0})

    big = 10000 if cuda else 2000
    n_gal = big // 8 if args.quick else big
    big_prob, big_gal = random_maps(big, 3, device), random_maps(n_gal, 4, device)
    extra = peak_memory_mib(lambda: pairwise_scores(matcher, big_prob, big_gal), device)
    kind = "default dtype" if cuda else "float32"
    rows.append({"case": f"peak extra MiB, {big} x {n_gal} maps {kind}", "GFLOP/s": extra})
    save(
        results_name("scoring", device),
        rows,
        notes=f"{n} x {n} maps of 128x24x8; 'vs peak' compares with a same-dtype square matmul "
        f"({'8192' if cuda else '2048'}^3); the memory row is the extra "
        f"{'allocated GPU' if cuda else 'resident'} memory of one pairwise_scores call (inputs excluded).",
    )


if __name__ == "__main__":
    main()
