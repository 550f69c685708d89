"""All-pairs QAConv scoring: `pairwise_scores` against a naive einsum and the machine's GEMM peak.

Feature maps have the paper's shape (128 x 24 x 8, so 192 locations). One pair costs
2 * 192^2 * 128 FLOPs in the location-pair matrix product; the max reductions and dot
products are not counted. The naive version is the published code's arithmetic: one einsum
to a [P, G, hw, hw] tensor, both max reductions, batch norm, linear layer and logit batch norm.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from benchmarks.common import best_time, peak_extra_mib, save
from qaconv.matching import QAConv, pairwise_scores

C, H, W = 128, 24, 8
HW = H * W
FLOP_PER_PAIR = 2 * HW * HW * C


def random_maps(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, C, H, W, generator=g), dim=1)


def naive_scores(matcher: QAConv, prob: torch.Tensor, gal: torch.Tensor) -> torch.Tensor:
    """The published forward: einsum to all location pairs at once, then the matcher's layers."""
    with torch.inference_mode():
        p, g = prob.view(len(prob), C, HW), gal.view(len(gal), C, HW)
        sim = torch.einsum("pcs,gcr->pgrs", p, g)
        x = torch.cat((sim.max(dim=2)[0], sim.max(dim=3)[0]), dim=-1)
        x = matcher.bn(x.view(-1, 1, HW)).view(-1, HW)
        x = matcher.fc(x).view(-1, 2).sum(1, keepdim=True)
        return matcher.logit_bn(x).view(len(prob), len(gal))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a smaller memory probe")
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    torch.manual_seed(0)
    matcher = QAConv(C, H, W).eval()
    prob, gal = random_maps(96, 1), random_maps(96, 2)
    pairs = len(prob) * len(gal)

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    gemm_s = best_time(lambda: a @ b, repeat=repeat)
    peak_gflops = 2 * 2048**3 / gemm_s / 1e9
    naive_s = best_time(lambda: naive_scores(matcher, prob, gal), repeat=repeat)
    fp32_s = best_time(lambda: pairwise_scores(matcher, prob, gal), repeat=repeat)
    bf16_s = best_time(lambda: pairwise_scores(matcher, prob, gal, dtype=torch.bfloat16), repeat=repeat)
    ab, bb = a.bfloat16(), b.bfloat16()
    bf16_peak = 2 * 2048**3 / best_time(lambda: ab @ bb, repeat=repeat) / 1e9

    rows = [{"case": "gemm 2048^3 float32", "pairs/s": "", "GFLOP/s": peak_gflops, "vs naive": "", "vs peak": 1.0}]
    naive_pps = pairs / naive_s
    for name, seconds, peak in [
        ("naive einsum float32", naive_s, peak_gflops),
        ("pairwise_scores float32", fp32_s, peak_gflops),
        ("pairwise_scores bfloat16", bf16_s, bf16_peak),
    ]:
        gflops = pairs * FLOP_PER_PAIR / seconds / 1e9
        rows.append(
            {
                "case": name,
                "pairs/s": pairs / seconds,
                "GFLOP/s": gflops,
                "vs naive": (pairs / seconds) / naive_pps,
                "vs peak": gflops / peak,
            }
        )
    rows.append({"case": "gemm 2048^3 bfloat16", "pairs/s": "", "GFLOP/s": bf16_peak, "vs naive": "", "vs peak": 1.0})

    n_gal = 250 if args.quick else 2000
    big_prob, big_gal = random_maps(2000, 3), random_maps(n_gal, 4)
    extra = peak_extra_mib(lambda: pairwise_scores(matcher, big_prob, big_gal))
    rows.append({"case": f"peak extra MiB, 2000 x {n_gal} maps float32", "pairs/s": "", "GFLOP/s": extra})
    save(
        "scoring",
        rows,
        notes="96 x 96 maps of 128x24x8; 'vs peak' compares with a same-dtype 2048^3 matmul; "
        "the memory row is the extra resident memory of one pairwise_scores call (inputs excluded).",
    )


if __name__ == "__main__":
    main()
