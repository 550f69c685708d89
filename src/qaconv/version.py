"""The installed qaconv's version (written into run records, folder marks and `qaconv --version`)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qaconv")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
