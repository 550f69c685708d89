"""qaconv: generalizable person re-identification with QAConv and Graph Sampling (Liao & Shao, CVPR 2022)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qaconv")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
