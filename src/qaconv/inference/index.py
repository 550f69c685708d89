"""Gallery index folders on disk: write, open, validate. (Building one is `ReID.build_index`; searching
one is `qaconv.inference.search`.)

An index is a folder:

    manifest.json     format, checkpoint fingerprint and path, model config, count, map shape, date
    maps.npy          [N, C, h, w] float16 feature maps, opened memory-mapped (pages load on demand)
    descriptors.npy   [N, C] float32 global descriptors: mean-pooled, L2-normalised feature maps
    paths.json        the N image paths (absolute), in index order
    stats.npy         [N, 2] int64 size and modification time (ns) of each image when it was indexed, so
                      that `changes()` finds images replaced, edited or removed since (`qaconv index update`)
    locations.npz     optional: the first stage of search, every location vector as its nearest centroid, and
                      the centroids (`qaconv.inference.first_stage`); its settings are in the manifest

The fingerprint (sha256 of the model's and matcher's state tensors) ties the maps to the network
that made them: searching with another checkpoint is refused, because its scores would be
meaningless. The folder is written under a hidden temporary name and swapped into place when
complete (`qaconv.io.folder_swap`), so a crash never leaves a half index and never loses the old one.
"""

from __future__ import annotations

import datetime
import errno
import functools
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from qaconv.config.tree import INDEX_FIRST_STAGES
from qaconv.errors import QAConvError
from qaconv.folders import INDEX, check_output, expect_kind, mark
from qaconv.inference.first_stage import (
    AUTO_MIN_ENTRIES,
    LOCATIONS_FILE,
    FirstStageSettings,
    LocationIndex,
    faiss_available,
)
from qaconv.io import folder_swap
from qaconv.lock import FolderLock

FORMAT = "qaconv-index/1"
MANIFEST = "manifest.json"
MAPS = "maps.npy"
DESCRIPTORS = "descriptors.npy"
PATHS = "paths.json"
STATS = "stats.npy"
REBUILD = "re-build the index (qaconv index build --overwrite)"


@dataclass(frozen=True)
class IndexChanges:
    """Images of an index that changed on disk since they were indexed: `changed` (another size or modification
    time: replaced or edited) and `missing` (gone); `unknown` when the index records no file statistics."""

    changed: list[str]
    missing: list[str]
    unknown: bool = False

    def __bool__(self) -> bool:
        return bool(self.changed or self.missing)

    def describe(self, index: str | os.PathLike) -> str:
        shown = ", ".join((self.changed + self.missing)[:3]) + (", ..." if len(self.changed + self.missing) > 3 else "")
        return (
            f"index {index}: {len(self.changed)} image(s) changed and {len(self.missing)} removed since they were "
            f"indexed ({shown}), so their maps are out of date; run qaconv index update --index {index}"
        )


@dataclass(frozen=True)
class GalleryIndex:
    """An opened index folder: memory-mapped maps, descriptors, paths, file statistics and the manifest."""

    root: Path
    maps: Tensor
    descriptors: Tensor
    paths: list[str]
    manifest: dict[str, Any]
    stats: np.ndarray | None = None

    def recorded_checkpoint(self) -> str:
        """The checkpoint the index was built with, when it is still there (the default of --checkpoint)."""
        recorded = self.manifest.get("checkpoint")
        if not recorded or not Path(recorded).exists():
            raise QAConvError(f"index {self.root} records checkpoint {recorded}, which is not found; pass --checkpoint")
        return recorded

    def check_unchanged(self, if_changed: str = "warn") -> None:
        """Warn (or refuse, with `if_changed` "refuse") when images changed on disk since they were indexed."""
        changes = self.changes()
        if changes and if_changed == "refuse":
            raise QAConvError(changes.describe(self.root))
        if changes:
            warnings.warn(changes.describe(self.root), UserWarning, stacklevel=2)

    def changes(self) -> IndexChanges:
        """Which of the index's images changed or disappeared since they were indexed (one stat per image)."""
        if self.stats is None:
            return IndexChanges([], [], unknown=True)
        changed, missing = [], []
        for path, recorded in zip(self.paths, self.stats.tolist(), strict=True):
            now = file_stat(path)
            if now is None:
                missing.append(path)
            elif now != tuple(recorded):
                changed.append(path)
        return IndexChanges(changed, missing)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @functools.cached_property
    def first_stage(self) -> LocationIndex | None:
        """The index's location first stage (read on first use), or None when it has none."""
        settings = self.manifest.get("first_stage")
        if not settings:
            return None
        locations = int(np.prod(self.maps.shape[2:]))
        return LocationIndex.load(self.root / LOCATIONS_FILE, FirstStageSettings(**settings), locations)

    @classmethod
    def open(cls, path: str | os.PathLike) -> GalleryIndex:
        """Open an index folder written by `ReID.build_index`; its maps stay on disk until read."""
        root = Path(path).expanduser()
        if not root.is_dir():
            raise QAConvError(f"index not found: {root}" + (" (it is a file, not a folder)" if root.exists() else ""))
        expect_kind(root, "index", [INDEX], "an index (qaconv index build)")
        manifest = _read_manifest(root)
        if manifest.get("first_stage") and set(manifest["first_stage"]) != set(FirstStageSettings.__dataclass_fields__):
            raise QAConvError(f"index {root}: its first stage was written by another version of qaconv; {REBUILD}")
        for name in (MAPS, DESCRIPTORS, PATHS) + ((LOCATIONS_FILE,) if manifest.get("first_stage") else ()):
            if not (root / name).is_file():
                raise QAConvError(f"index {root} is incomplete: {name} is missing ({REBUILD})")
        # copy-on-write mapping: lazily paged like a read-only one, but torch accepts it without a warning
        maps = torch.from_numpy(_load_array(root / MAPS, mmap_mode="c"))
        descriptors = torch.from_numpy(_load_array(root / DESCRIPTORS))
        paths = _read_json(root / PATHS)
        count = manifest.get("count")
        if not isinstance(paths, list) or not (len(maps) == len(descriptors) == len(paths) == count):
            found = len(paths) if isinstance(paths, list) else type(paths).__name__
            raise QAConvError(
                f"index {root} is inconsistent: {len(maps)} maps, {len(descriptors)} descriptors, "
                f"{found} paths, manifest count {count} ({REBUILD})"
            )
        stats = _load_array(root / STATS) if (root / STATS).is_file() else None  # indexes built before stats: None
        if stats is not None and stats.shape != (len(paths), 2):
            raise QAConvError(f"index {root} is inconsistent: {STATS} has shape {stats.shape} ({REBUILD})")
        return cls(root, maps, descriptors, paths, manifest, stats)

    def check_fingerprint(self, fingerprint: str, checkpoint: str | os.PathLike | None) -> None:
        """Refuse a model other than the one the maps were made with (`checkpoint`: where it was loaded from)."""
        if fingerprint == self.fingerprint:
            return
        recorded = self.manifest.get("checkpoint")
        prints = f"fingerprint {self.fingerprint[:16]}... then, {fingerprint[:16]}... now"
        if checkpoint is not None and recorded and _same_file(recorded, checkpoint):
            raise QAConvError(
                f"the checkpoint {checkpoint} changed since index {self.root} was built from it ({prints}); {REBUILD}"
            )
        raise QAConvError(
            f"index {self.root} was built with another checkpoint ({recorded}): "
            f"its fingerprint {self.fingerprint[:16]}... differs from {fingerprint[:16]}... of "
            f"{checkpoint or 'this model'}; search with the checkpoint it was built with, or {REBUILD}"
        )


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _load_array(path: Path, mmap_mode: str | None = None) -> np.ndarray:
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # truncated ("mmap length is greater than file size") or garbled
        raise QAConvError(f"{path} is damaged ({exc}); {REBUILD}") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QAConvError(f"{path} is not valid JSON ({exc})") from None


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise QAConvError(f"{root} is not a qaconv index: it has no {MANIFEST}")
    manifest = _read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise QAConvError(f"{path}: unsupported index format {found!r} (expected {FORMAT!r})")
    missing = [k for k in ("fingerprint", "count", "model_config") if k not in manifest]
    if missing:
        raise QAConvError(f"{path} is missing the key(s) {', '.join(missing)}")
    return manifest


def check_index_out(out: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an --out that is a file, a non-index folder, or an index without `overwrite` (before any work)."""
    own = (MANIFEST, MAPS, DESCRIPTORS, PATHS, STATS, LOCATIONS_FILE)
    return check_output(out, INDEX, "--out", overwrite=overwrite, own=own)


def wants_first_stage(choice: str, entries: int) -> bool:
    """Whether an index of `entries` gets a location first stage: `locations` always (faiss needed), `none`
    never, `auto` from AUTO_MIN_ENTRIES entries when faiss is installed."""
    if choice not in INDEX_FIRST_STAGES:
        raise QAConvError(f"--first-stage must be one of {', '.join(INDEX_FIRST_STAGES)}, got {choice!r}")
    return choice == "locations" or (choice == "auto" and entries >= AUTO_MIN_ENTRIES and faiss_available())


@contextmanager
def write_index(
    out: str | os.PathLike,
    capacity: int,
    map_shape: Sequence[int],
    manifest: dict[str, Any],
    *,
    overwrite: bool,
    first_stage: str = "auto",
    trained: LocationIndex | None = None,
) -> Iterator[IndexWriter]:
    """Yield an `IndexWriter` for at most `capacity` entries; when the block ends the index replaces `out`.

    The folder is written under a hidden name beside `out`; an exception (or Ctrl-C) in the block
    removes it and leaves `out` as it was. `out` is locked meanwhile (`FolderLock.beside`): a second
    build of the same index refuses at once. `manifest` holds the fields that describe the model.
    `first_stage` (auto, locations, none) says whether the maps also go into a location first stage, trained
    on them, or, given `trained` (an update), encoded with that one's centroids.
    """
    if first_stage == "locations":
        from qaconv.inference.first_stage import faiss_module

        faiss_module()  # before any work
    with FolderLock.beside(out, "qaconv index build"):
        out = check_index_out(out, overwrite)
        with folder_swap(out) as folder:
            writer = IndexWriter(folder, capacity, map_shape)
            yield writer
            writer.finish(manifest)
            if trained is not None or wants_first_stage(first_stage, len(writer.paths)):
                writer.add_first_stage(trained)
            mark(folder, INDEX)


class IndexWriter:
    """Writes the files of an index folder: `add` blocks of entries (and `skip` unreadable images), then `finish`.

    The maps go to a preallocated memory-mapped file of `capacity` entries, so memory holds one block.
    """

    def __init__(self, folder: Path, capacity: int, map_shape: Sequence[int]) -> None:
        self.folder = folder
        self.map_shape = tuple(map_shape)
        shape = (capacity, *self.map_shape)
        self._maps = np.lib.format.open_memmap(folder / MAPS, mode="w+", dtype=np.float16, shape=shape)
        _reserve(folder / MAPS)
        self._descriptors = np.empty((capacity, self.map_shape[0]), dtype=np.float32)
        self._stats = np.zeros((capacity, 2), dtype=np.int64)
        self.paths: list[str] = []
        self.skipped: list[str] = []

    def add(
        self, maps: Tensor | np.ndarray, descriptors: Tensor | np.ndarray, paths: Sequence[str], stats: Any = None
    ) -> None:
        """Append the maps (stored as float16), float32 descriptors and absolute paths of a block of images, with
        each file's (size, modification time) as taken before its image was read (None: stat them now)."""
        start, end = len(self.paths), len(self.paths) + len(paths)
        self._maps[start:end] = maps.half().numpy() if isinstance(maps, Tensor) else maps
        self._descriptors[start:end] = descriptors.numpy() if isinstance(descriptors, Tensor) else descriptors
        self._stats[start:end] = [s or (-1, -1) for s in (stats or [file_stat(p) for p in paths])]
        self.paths += paths

    def skip(self, path: str) -> None:
        """Record an image left out (unreadable); the manifest lists them."""
        self.skipped.append(path)

    def finish(self, manifest: dict[str, Any]) -> None:
        """Write descriptors, paths and the manifest (`manifest` plus format, date, count, map shape, skipped)."""
        count = len(self.paths)
        maps, self._maps = self._maps, None
        maps.flush()
        if count < len(maps):  # images were skipped: keep only the entries written
            _shrink(self.folder / MAPS, maps, count)
        del maps  # closes the memory map before the folder is moved
        np.save(self.folder / DESCRIPTORS, self._descriptors[:count])
        np.save(self.folder / STATS, self._stats[:count])
        (self.folder / PATHS).write_text(json.dumps(self.paths, indent=0) + "\n")
        record = {
            "format": FORMAT,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **manifest,
            "count": count,
            "map_shape": list(self.map_shape),
            "maps_dtype": "float16",
            "descriptor": "mean over locations of the feature map, L2-normalised",
            "skipped": self.skipped,
        }
        (self.folder / MANIFEST).write_text(json.dumps(record, indent=2) + "\n")

    def add_first_stage(self, trained: LocationIndex | None = None) -> None:
        """Write the first stage's file from the finished maps (trained on them, or encoded with `trained`'s
        centroids, its search depths set again for the gallery's new size) and its settings into the manifest."""
        maps = _load_array(self.folder / MAPS, mmap_mode="r")
        stage = LocationIndex.build(maps) if trained is None else trained.emptied()
        if trained is not None:
            for_size = FirstStageSettings.for_gallery(len(maps), maps.shape[1], int(np.prod(maps.shape[2:])))
            stage.settings = replace(for_size, lists=trained.settings.lists)
            stage.add_all(maps)
        stage.save(self.folder / LOCATIONS_FILE)
        record = _read_json(self.folder / MANIFEST)
        record["first_stage"] = stage.settings.to_dict()
        (self.folder / MANIFEST).write_text(json.dumps(record, indent=2) + "\n")


def file_stat(path: str | os.PathLike) -> tuple[int, int] | None:
    """(size in bytes, modification time in ns) of a file, or None when it is gone."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def _reserve(path: Path) -> None:
    """Allocate the disk blocks of a (sparse) memory-mapped file now: a full disk is then an OSError here,
    not a SIGBUS that kills the process when a page of the map is written."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
    finally:
        os.close(fd)


def _shrink(path: Path, maps: np.memmap, count: int, block: int = 4096) -> None:
    """Rewrite a memory-mapped .npy with only its first `count` entries."""
    smaller = path.with_name(f"{path.stem}.shrunk.npy")
    out = np.lib.format.open_memmap(smaller, mode="w+", dtype=maps.dtype, shape=(count, *maps.shape[1:]))
    _reserve(smaller)
    for start in range(0, count, block):
        out[start : start + block] = maps[start : min(start + block, count)]
    out.flush()
    del out
    os.replace(smaller, path)
