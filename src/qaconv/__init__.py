"""qaconv: generalizable person re-identification with QAConv and Graph Sampling (Liao & Shao, CVPR 2022)."""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("qaconv")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["ReID", "__version__"]


def __getattr__(name: str) -> Any:
    """`from qaconv import ReID` without importing torch for `qaconv --version`."""
    if name == "ReID":
        from qaconv.inference import ReID

        return ReID
    raise AttributeError(f"module 'qaconv' has no attribute {name!r}")
