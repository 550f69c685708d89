"""Devices and precision, decided in one place: which device a run uses and which dtypes it computes in.

The policy follows the published code: on CUDA, training runs under float16 autocast and feature maps
and QAConv scores are float16 (its evaluation precision); everywhere else float32 (bfloat16 on request).
"""

from __future__ import annotations

import torch

from qaconv.errors import QAConvError

AMP_MODES = ("auto", "off", "fp16", "bf16")


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """Return the requested device, or CUDA when available and CPU otherwise for None/'auto'."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise QAConvError(f"--device: unknown device {name!r} (use cpu, cuda, cuda:N or mps)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise QAConvError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise QAConvError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise QAConvError(f"--device {name}: MPS is not available on this machine")
    return device


def half_on_cuda(device: torch.device) -> torch.dtype:
    """float16 on CUDA (the published code's inference precision), float32 elsewhere: the default dtype
    of stored feature maps and of QAConv scoring."""
    return torch.float16 if device.type == "cuda" else torch.float32


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for training with --amp: auto is float16 on CUDA and off elsewhere."""
    if mode not in AMP_MODES:
        raise QAConvError(f"--amp must be one of {', '.join(AMP_MODES)}, got {mode!r}")
    if mode == "auto":
        return torch.float16 if device.type == "cuda" else None
    if mode == "fp16" and device.type != "cuda":
        raise QAConvError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")
    return {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[mode]
