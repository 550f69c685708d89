"""Feature maps of a test split, extracted once and optionally kept on disk (`--cache-dir`).

A cache file is keyed by a sha256 of the model's weights (`state_fingerprint`), the input size, the
dtype, and each image's path, size in bytes and modification time, so replacing images under the same
names is a cache miss, never stale results. The folder is checked (created when missing) before any
work, so an unusable `--cache-dir` fails at once.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from qaconv.config import ModelConfig
from qaconv.config.tree import EvaluationConfig
from qaconv.engine.checkpoint import save_checkpoint
from qaconv.engine.features import extract_feature_maps
from qaconv.errors import QAConvError

from .testsets import file_stem


class FeatureCache:
    """Cache files in `folder` for the model with weights `fingerprint`."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder = folder
        self.fingerprint = fingerprint

    @staticmethod
    def prepare(cache_dir: str | os.PathLike) -> Path:
        """The cache folder, created when missing; QAConvError naming --cache-dir when it cannot be used."""
        folder = Path(cache_dir).expanduser()
        if folder.exists() and not folder.is_dir():
            raise QAConvError(f"--cache-dir {folder} is a file, not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QAConvError(f"--cache-dir {folder}: cannot create the folder ({exc.strerror})") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise QAConvError(f"--cache-dir {folder}: not writable")
        return folder

    def key(self, records: Sequence[Any], config: ModelConfig, dtype: torch.dtype) -> str:
        """sha256 of the weights, input size, dtype and every image's path, size and modification time."""
        digest = hashlib.sha256(f"{self.fingerprint}|{config.height}x{config.width}|{dtype}|".encode())
        for r in records:
            try:
                st = os.stat(r.path)
                stamp = f"{st.st_size}|{st.st_mtime_ns}"
            except OSError:
                stamp = "missing"  # extraction reports it
            digest.update(f"{r.path}|{stamp}\n".encode())
        return digest.hexdigest()

    def path(self, label: str, split: str, key: str) -> Path:
        return self.folder / f"{file_stem(label)}-{split}-{key[:16]}.pt"

    def load(self, path: Path, key: str) -> Tensor | None:
        """The cached maps when `path` holds them for `key`; None otherwise (an unreadable file is reported
        and extracted again)."""
        if not path.is_file():
            return None
        try:
            cached = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except Exception as exc:  # a truncated or foreign file: extract again and overwrite it
            print(f"ignoring unreadable feature cache {path} ({type(exc).__name__})")
            return None
        return cached["maps"] if isinstance(cached, dict) and cached.get("key") == key else None

    def save(self, path: Path, key: str, maps: Tensor) -> None:
        save_checkpoint({"key": key, "maps": maps}, path)


def split_maps(
    model: nn.Module,
    records: list,
    split: str,
    label: str,
    *,
    config: ModelConfig,
    options: EvaluationConfig,
    workers: int,
    dtype: torch.dtype,
    device: torch.device,
    cache: FeatureCache | None,
) -> Tensor:
    """Feature maps of one split, from the cache when it holds them for this model, images, size and dtype."""
    key = path = None
    if cache is not None:
        key = cache.key(records, config, dtype)
        path = cache.path(label, split, key)
        cached = cache.load(path, key)
        if cached is not None:
            return cached
    maps = extract_feature_maps(
        model,
        records,
        height=config.height,
        width=config.width,
        batch_size=options.batch_size,
        num_workers=workers,
        device=device,
        autocast_dtype=dtype,
        out_dtype=dtype,
        progress=f"{label} {split}" if sys.stderr.isatty() else None,
    )
    if cache is not None:
        cache.save(path, key, maps)
    return maps
