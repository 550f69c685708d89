"""qaconv: generalizable person re-identification with QAConv and Graph Sampling (Liao & Shao, CVPR 2022)."""

from typing import Any

from qaconv.version import __version__

__all__ = ["ReID", "__version__"]


def __getattr__(name: str) -> Any:
    """`from qaconv import ReID` without importing torch for `qaconv --version`."""
    if name == "ReID":
        from qaconv.inference import ReID

        return ReID
    raise AttributeError(f"module 'qaconv' has no attribute {name!r}")
