"""How to evaluate: `EvalOptions`, checked in one place, and the scoring dtype it asks for on a device."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from qaconv.cpus import default_workers
from qaconv.device import half_on_cuda
from qaconv.errors import QAConvError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
RERANK_DISTS = ("neg_score", "sigmoid")
MAX_TLIFT_K = 100  # TLift's pivots are the top-K retrievals; Market has ~2,600 gallery images per camera


@dataclass
class EvalOptions:
    """How to evaluate; every field is a flag of `qaconv evaluate` (underscores become dashes: --k1,
    --lambda-value, ...), checked by `validate` with a one-line error naming the flag.

    dtype: 'auto' (float16 on CUDA as the published code, float32 elsewhere), 'float32', 'bfloat16' or
    'float16' (CUDA only); used for the forward (autocast), the stored maps and the scoring.
    tau, sigma, K, alpha: TLift's co-occurrence window (s), time-difference scale (s), number of top
    retrievals that define the pivots (1..100) and fusion regulariser (>= 0).
    rerank_dist: the distance fed to re-ranking, 'neg_score' (-score, the published code since 2023) or
    'sigmoid' (1 - sigmoid(score / 10), the paper-era code; always positive).
    workers: data-loading processes (default: 4, at most the CPU count).
    k1, k2, lambda_value: k-reciprocal re-ranking's neighbours, query-expansion neighbours and the weight
    of the original distance (published: 20, 6, 0.3).
    report: gallery items per ranked list in the report (0: no report).
    cache_dir: keep extracted maps there, keyed by the model's weights, each image's path, size and
    modification time, the input size and the dtype.
    """

    batch_size: int = 64
    workers: int = field(default_factory=default_workers)
    prob_block: int = 256
    gal_block: int = 4096
    dtype: str = "auto"
    rerank: bool = False
    tlift: bool = False
    tau: float = 100.0
    sigma: float = 200.0
    K: int = 10
    alpha: float = 0.2
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3
    rerank_dist: str = "neg_score"
    save_scores: bool = False
    report: int = 0
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """QAConvError naming the flag of the first field out of its range."""
        for name in ("batch_size", "prob_block", "gal_block", "K", "k1", "k2"):
            if int(getattr(self, name)) < 1:
                raise QAConvError(f"{flag(name)} must be a positive integer, got {getattr(self, name)}")
        for name in ("workers", "report"):
            if int(getattr(self, name)) < 0:
                raise QAConvError(f"{flag(name)} must be >= 0, got {getattr(self, name)}")
        if self.dtype not in ("auto", *DTYPES):
            raise QAConvError(f"--dtype must be auto, {', '.join(DTYPES)}; got {self.dtype!r}")
        if self.rerank_dist not in RERANK_DISTS:
            raise QAConvError(f"--rerank-dist must be one of {', '.join(RERANK_DISTS)}, got {self.rerank_dist!r}")
        if not (_finite(self.tau) and self.tau > 0 and _finite(self.sigma) and self.sigma > 0):
            raise QAConvError(f"--tau and --sigma must be positive, got {self.tau} and {self.sigma}")
        if int(self.K) > MAX_TLIFT_K:
            raise QAConvError(
                f"--K must be at most {MAX_TLIFT_K} (TLift's pivots are the top-K retrievals; published: 10), "
                f"got {self.K}"
            )
        if not (_finite(self.alpha) and self.alpha >= 0):
            raise QAConvError(f"--alpha must be >= 0 (TLift gives (w + alpha) * score; default 0.2), got {self.alpha}")
        if not 0.0 <= self.lambda_value <= 1.0:
            raise QAConvError(f"{flag('lambda_value')} must be in [0, 1], got {self.lambda_value}")


def flag(name: str) -> str:
    """The command-line flag of an option field."""
    return "--" + name.replace("_", "-")


def _finite(value: float) -> bool:
    return math.isfinite(float(value))


def resolve_eval_dtype(name: str, device: torch.device) -> torch.dtype:
    """torch dtype for --dtype on `device` ('auto': float16 on CUDA, float32 elsewhere)."""
    if name == "auto":
        return half_on_cuda(device)
    dtype = DTYPES[name]
    if dtype == torch.float16 and device.type != "cuda":
        raise QAConvError(f"--dtype float16 needs a CUDA device (this is {device.type}); use float32 or bfloat16")
    return dtype
