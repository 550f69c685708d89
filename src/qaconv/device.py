"""One place that turns a user's device choice into a torch.device (CPU works everywhere)."""

from __future__ import annotations

import torch

from qaconv.errors import QAConvError


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
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise QAConvError(f"--device {name}: MPS is not available on this machine")
    return device
