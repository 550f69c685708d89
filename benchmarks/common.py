"""Shared helpers for the benchmark scripts: timing, peak memory of a call, and result files.

Every benchmark prints its table and writes benchmarks/results/<name>.json, which
benchmarks/run_all.py turns into the table of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import json
import os
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def best_time(fn: Callable[[], Any], repeat: int = 3, warmup: int = 1, device: Any = "cpu") -> float:
    """Best wall-clock seconds of `repeat` calls after `warmup` untimed ones (CUDA work waited for)."""
    import torch

    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def best_cpu_time(fn: Callable[[], Any], repeat: int = 3, warmup: int = 1) -> float:
    """Best CPU seconds (this process, all its threads) of `repeat` calls after `warmup` untimed ones.

    For single-threaded code this is the wall time it takes on an idle machine, and it does not grow
    when other work shares the CPUs; do not use it for multi-threaded code (the threads' times add up).
    """
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def parse_args(doc: str | None, quick_help: str) -> argparse.Namespace:
    """The options of the benchmarks that also run on a GPU: --quick and --device (args.device a torch.device)."""
    import torch

    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--device", default="cpu", type=torch.device, help="cpu or cuda")
    return parser.parse_args()


def results_name(name: str, device: Any) -> str:
    """Results file name: CUDA runs are kept beside the CPU ones (scoring -> scoring_cuda)."""
    import torch

    return f"{name}_cuda" if torch.device(device).type == "cuda" else name


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_extra_mib(fn: Callable[[], Any], interval: float = 0.002) -> float:
    """Peak resident memory (MiB) that `fn` adds over the resident memory before the call.

    A thread samples /proc/self/statm every `interval` seconds while `fn` runs (torch releases the
    GIL in its kernels). In-process sampling, because a forked child can deadlock in OpenMP. Free heap
    pages are first returned to the system (glibc malloc_trim), so that `fn` cannot reuse them uncounted.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    start = _rss_mib()
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_mib())
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    return max(peak, _rss_mib()) - start


def machine() -> str:
    """One line naming the machine a result came from."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def save(name: str, rows: list[dict[str, Any]], notes: str = "") -> Path:
    """Print rows as a table and write them with the machine and date to results/<name>.json."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    widths = {k: max(len(k), *(len(_fmt(row.get(k, ""))) for row in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(_fmt(row.get(k, "")).ljust(widths[k]) for k in keys))
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "benchmark": name,
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "notes": notes,
        "rows": rows,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
