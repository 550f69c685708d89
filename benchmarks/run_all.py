"""Run every hot-path benchmark and rebuild docs/benchmarks.md from benchmarks/results/*.json.

python -m benchmarks.run_all            # every benchmark in --quick form (make bench, < 15 min on 2 cores)
python -m benchmarks.run_all --full     # the full sizes
python -m benchmarks.run_all --docs-only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
# (module, results name, what it measures); names ending in _cuda run with --device cuda
BENCHMARKS = [
    ("bench_scoring", "scoring", "all-pairs QAConv scoring against a naive einsum and the GEMM peak"),
    ("bench_scoring", "scoring_cuda", "all-pairs QAConv scoring on the GPU (float32, float16, bfloat16)"),
    ("bench_features", "features", "feature-map extraction from JPEGs against the model alone"),
    ("bench_features", "features_cuda", "feature-map extraction on the GPU (paper model, float16)"),
    ("bench_loading", "loading", "image decoding + training augmentation, 0 and 2 workers"),
    ("bench_sampler", "sampler", "Graph Sampler index building and running top-k neighbour search"),
    ("bench_train", "train", "training images/s with GS and PK, share of the epoch spent on the graph"),
    ("bench_train", "train_cuda", "training on the GPU at the paper's setting (ResNet-50 IBN-b, 384x128, AMP)"),
    ("bench_eval", "eval", "ranking metrics and re-ranking against the published algorithms"),
    ("bench_eval_streaming", "eval_streaming", "peak memory of streaming evaluation against a dense Q x G"),
    ("bench_search", "search", "gallery search: location first stage vs exhaustive QAConv"),
    ("bench_serve", "serve", "search and match through `qaconv serve` against the same calls in process"),
    ("gs_vs_pk", "gs_vs_pk", "GS against PK sampling under one wall-clock budget (synthetic A -> B)"),
]

HEADER = """# Benchmarks

Every hot path has a script in `benchmarks/` that measures it against a baseline in the same run
(a naive or published implementation of the same arithmetic, or the machine's matrix-product
peak), so the ratios hold on any machine even where the absolute times do not. `make bench`
runs them all in their `--quick` form and rebuilds this page from `benchmarks/results/*.json`;
`python -m benchmarks.run_all --full` runs the full sizes. Each table below says which machine
and date it came from.

The `_cuda` tables come from a GPU machine (`python -m benchmarks.run_all` runs them where CUDA is
available); the others from the 2-core CPU that CI uses.
"""


def run(module: str, name: str, full: bool) -> float:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", f"benchmarks.{module}"] + ([] if full else ["--quick"])
    cmd += ["--device", "cuda"] if name.endswith("_cuda") else []
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return time.perf_counter() - start


def cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value).replace("|", "\\|")


def table(rows: list[dict]) -> list[str]:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(row.get(k, "")) for k in keys) + " |" for row in rows]
    return lines


def write_doc() -> None:
    lines = [HEADER]
    for module, name, what in BENCHMARKS:
        path = RESULTS_DIR / f"{name}.json"
        lines.append(f"## {name}: {what}\n")
        if not path.is_file():
            if name.endswith("_cuda"):
                lines.append(f"Needs a CUDA machine; not run yet: `python -m benchmarks.{module} --device cuda`.\n")
            else:
                lines.append(f"Not run yet: `python -m benchmarks.{module}`.\n")
            continue
        result = json.loads(path.read_text())
        lines.append(f"`python -m benchmarks.{module}` on {result['machine']}, {result['date']}.\n")
        lines += table(result["rows"])
        if result.get("notes"):
            lines.append(f"\n{result['notes']}\n")
        else:
            lines.append("")
    DOC.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {DOC}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full sizes instead of --quick")
    parser.add_argument("--only", default="", help="comma-separated benchmark modules to run")
    parser.add_argument("--docs-only", action="store_true", help="only rebuild docs/benchmarks.md")
    args = parser.parse_args()
    if not args.docs_only:
        only = {name.strip() for name in args.only.split(",") if name.strip()}
        import torch

        for module, name, _ in BENCHMARKS:
            if name.endswith("_cuda") and not torch.cuda.is_available():
                continue
            if not only or module in only:
                print(f"{name}: {run(module, name, args.full):.0f} s", flush=True)
    write_doc()


if __name__ == "__main__":
    main()
