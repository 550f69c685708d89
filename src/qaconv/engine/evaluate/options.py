"""The scoring dtype an evaluation asks for on a device. The evaluation's options are
`qaconv.config.EvaluationConfig` (declared once, with their ranges; docs/evaluation.md)."""

from __future__ import annotations

import torch

from qaconv.config.tree import EVAL_DTYPES
from qaconv.device import half_on_cuda
from qaconv.errors import QAConvError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
assert set(DTYPES) | {"auto"} == set(EVAL_DTYPES), "the config's dtype names are the torch dtypes here"


def resolve_eval_dtype(name: str, device: torch.device) -> torch.dtype:
    """torch dtype for --dtype on `device` ('auto': float16 on CUDA, float32 elsewhere)."""
    if name == "auto":
        return half_on_cuda(device)
    dtype = DTYPES[name]
    if dtype == torch.float16 and device.type != "cuda":
        raise QAConvError(f"--dtype float16 needs a CUDA device (this is {device.type}); use float32 or bfloat16")
    return dtype
