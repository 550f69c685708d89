"""`qaconv info`: versions, device, threads and which optional extras are installed."""

from __future__ import annotations

import argparse
import importlib.util
import platform

OPTIONAL_EXTRAS = ("faiss", "onnx", "onnxruntime", "tensorboard", "sklearn", "kornia")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="show versions, device, threads and optional extras")
    parser.set_defaults(func=run)


def collect() -> dict[str, str]:
    """What a bug report needs: versions, devices and extras found."""
    import numpy
    import torch

    from qaconv.version import __version__

    info = {
        "qaconv": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "threads": str(torch.get_num_threads()),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available",
        "mps": "available" if torch.backends.mps.is_available() else "not available",
        "bf16 on cpu": "yes" if torch.backends.mkldnn.is_available() else "unknown",
    }
    for name in OPTIONAL_EXTRAS:
        info[f"extra {name}"] = "found" if importlib.util.find_spec(name) else "missing"
    return info


def run(args: argparse.Namespace) -> int:
    for key, value in collect().items():
        print(f"{key:>18}: {value}")
    return 0
