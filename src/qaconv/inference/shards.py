"""Galleries in shards: index folders searched one at a time and merged exactly.

A shard set is a folder of index folders with a `shards.json` saying how the gallery was split:

    shards.json   {"format": "qaconv-shards/1", "gallery": the folder, "shard_by": folder | camera | size,
                   "shard_size": N (size only), "shards": [the shard folders' names, in order]}

By folder, each top-level sub-folder of the gallery is a shard (images directly in it: `_top`); by camera,
each camera written in the file names (docs/datasets.md's layouts); by size, runs of at most N images in
the gallery's order. `Gallery` is what search sees: one index, a shard set, or any list of them. Each shard is
searched on its own and the per-shard top-k lists are merged by score, ties going to the earlier shard and
the lower position, so an exhaustive search returns exactly what one index of all the images in that order
would. `qaconv index update` on a shard set re-does only the shards whose images changed (new ones go to
their folder's or camera's shard, or, by size, to the last shard until it is full).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from qaconv.config.tree import SHARD_BY
from qaconv.data.datasets.names import label_from_name
from qaconv.errors import QAConvError
from qaconv.folders import INDEX, check_output, mark
from qaconv.inference.images import gallery_files
from qaconv.inference.index import GalleryIndex
from qaconv.io import atomic_write_json
from qaconv.lock import FolderLock

SHARDS_FILE = "shards.json"
FORMAT = "qaconv-shards/1"
TOP = "_top"


@dataclass(frozen=True)
class Gallery:
    """The indexes one search runs over, in order (one index, or the shards of one or more shard sets)."""

    shards: tuple[GalleryIndex, ...]
    source: str | None = None  # the gallery folder the indexes were built from, when they share one

    @classmethod
    def open(cls, paths: str | os.PathLike | Sequence[str | os.PathLike]) -> Gallery:
        """Open index folders and shard sets (every shard of a set, in its order)."""
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not paths:
            raise QAConvError("no index given")
        shards: list[GalleryIndex] = []
        sources = set()
        for path in paths:
            root = Path(path).expanduser()
            if (root / SHARDS_FILE).is_file():
                record = read_shards(root)
                shards += [GalleryIndex.open(root / name) for name in record["shards"]]
                sources.add(record.get("gallery"))
            else:
                shards.append(GalleryIndex.open(root))
                sources.add(shards[-1].manifest.get("gallery"))
        fingerprints = {s.fingerprint for s in shards}
        if len(fingerprints) > 1:
            raise QAConvError(
                f"the indexes {', '.join(str(s.root) for s in shards)} were built with different checkpoints; "
                "shards searched together must share one model"
            )
        return cls(tuple(shards), sources.pop() if len(sources) == 1 else None)

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    @property
    def offsets(self) -> list[int]:
        """The position of each shard's first entry in the whole gallery."""
        out, total = [], 0
        for shard in self.shards:
            out.append(total)
            total += len(shard)
        return out

    @property
    def paths(self) -> list[str]:
        return [p for shard in self.shards for p in shard.paths]

    @property
    def fingerprint(self) -> str:
        return self.shards[0].fingerprint

    def check_fingerprint(self, fingerprint: str, checkpoint: str | os.PathLike | None) -> None:
        self.shards[0].check_fingerprint(fingerprint, checkpoint)

    def check_unchanged(self, if_changed: str = "warn") -> None:
        for shard in self.shards:
            shard.check_unchanged(if_changed)

    def recorded_checkpoint(self) -> str:
        return self.shards[0].recorded_checkpoint()

    def search_mode(self, first_stage: str, shortlist: int | None) -> str:
        """How `ReID.search` finds this gallery's candidates with these options, in words."""
        if first_stage == "auto" and all(s.manifest.get("first_stage") for s in self.shards):
            depth = f" ({shortlist} candidates)" if shortlist else ""
            return f"location first stage{depth}, re-scored by QAConv"
        if first_stage == "none" or shortlist is None:
            return "exhaustive"
        return f"two-stage (shortlist {shortlist})"

    def describe(self) -> str:
        if len(self.shards) == 1:
            return str(self.shards[0].root)
        shown = ", ".join(str(s.root) for s in self.shards[:3]) + (", ..." if len(self.shards) > 3 else "")
        return f"{len(self.shards)} shards ({shown})"


def merge_topk(parts: Sequence[tuple[Tensor, Tensor]], k: int) -> tuple[Tensor, Tensor]:
    """Merge per-shard (positions in the whole gallery, scores) [Q, k_i] into the top `k` [Q, k]: by score, then
    by the lower position, as one search over all the positions would rank them."""
    positions = torch.cat([p for p, _ in parts], dim=1)
    scores = torch.cat([s for _, s in parts], dim=1)
    by_position = positions.argsort(dim=1, stable=True)
    positions, scores = positions.gather(1, by_position), scores.gather(1, by_position)
    by_score = (-scores).argsort(dim=1, stable=True)[:, :k]
    return positions.gather(1, by_score), scores.gather(1, by_score)


# -------------------------------------------------------------------------------------------------- files


def read_shards(root: Path) -> dict[str, Any]:
    path = root / SHARDS_FILE
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QAConvError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("shards"), list):
        raise QAConvError(f"{path}: not a qaconv shard set (expected format {FORMAT!r} with a list of shards)")
    return record


def shard_key(path: str, gallery: str, shard_by: str) -> str:
    """The shard an image belongs to by folder or camera."""
    if shard_by == "folder":
        parts = Path(path).relative_to(gallery).parts
        return parts[0] if len(parts) > 1 else TOP
    label = label_from_name(path)
    if label is None:
        raise QAConvError(
            f"--shard-by camera: {path} names no camera (expected a layout of docs/datasets.md, e.g. "
            "0002_c1s1_000451_03.jpg); shard by folder or size instead"
        )
    return f"camera-{label[1]:02d}"


def split(paths: list[str], gallery: str, shard_by: str, shard_size: int | None,
          previous: dict[str, list[str]] | None = None) -> dict[str, list[str]]:  # fmt: skip
    """{shard name: its images, in the gallery's order}, shards in order. By size, an image of a `previous`
    shard stays there and new images fill the last shard up to `shard_size`, then new ones."""
    if shard_by not in SHARD_BY:
        raise QAConvError(f"--shard-by must be one of {', '.join(SHARD_BY)}, got {shard_by!r}")
    if shard_by != "size":
        out: dict[str, list[str]] = {}
        for path in paths:
            out.setdefault(shard_key(path, gallery, shard_by), []).append(path)
        return dict(sorted(out.items()))
    if not shard_size or shard_size < 1:
        raise QAConvError("--shard-by size needs --shard-size N (images per shard, at least 1)")
    previous = previous or {}
    home = {p: name for name, members in previous.items() for p in members}
    out = {name: [p for p in paths if home.get(p) == name] for name in previous}
    out = {name: members for name, members in out.items() if members}
    for path in (p for p in paths if p not in home):
        last = next(reversed(out), None)
        if last is None or len(out[last]) >= shard_size:
            last = next(f"shard-{i:04d}" for i in range(len(previous) + len(out) + 1) if f"shard-{i:04d}" not in
                        {*out, *previous})  # fmt: skip
            out[last] = []
        out[last].append(path)
    return out


def build_shards(reid: Any, gallery: str | os.PathLike, out: str | os.PathLike, *, shard_by: str,
                 shard_size: int | None = None, overwrite: bool = False, **options: Any) -> Gallery:  # fmt: skip
    """Index a gallery folder as a shard set in `out` (`options`: those of `ReID.build_index`); an earlier
    shard set there is replaced when `overwrite`."""
    root, paths = gallery_files(gallery)
    shards = split(paths, root, shard_by, shard_size)  # before any work: an unsplittable name is refused now
    out = Path(out).expanduser()
    earlier = read_shards(out)["shards"] if (out / SHARDS_FILE).is_file() else []
    out = check_output(out, INDEX, "--out", overwrite=overwrite, own=(SHARDS_FILE, *shards, *earlier))
    with FolderLock(out, "qaconv index build"):
        for name, members in shards.items():
            reid.build_index(members, out / name, overwrite=overwrite, **options)
        _write_record(out, root, shard_by, shard_size, list(shards))
        for name in set(earlier) - set(shards):
            shutil.rmtree(out / name, ignore_errors=True)
    return Gallery.open(out)


def update_shards(reid: Any, root: str | os.PathLike, gallery: str | os.PathLike | None = None,
                  **options: Any) -> tuple[Gallery, dict[str, int]]:  # fmt: skip
    """Bring a shard set up to date with its gallery: only the shards whose images were added, removed or
    changed are updated (`ReID.update_index`), new shards are built, emptied ones removed."""
    root = Path(root).expanduser()
    record = read_shards(root)
    folder, paths = gallery_files(gallery or record["gallery"])
    old = {name: GalleryIndex.open(root / name) for name in record["shards"]}
    shards = split(paths, folder, record["shard_by"], record.get("shard_size"), {n: s.paths for n, s in old.items()})
    counts = {"added": 0, "removed": 0, "changed": 0, "kept": 0, "shards updated": 0}
    with FolderLock(root, "qaconv index update"):
        for name, members in shards.items():
            index = old.get(name)
            if index is not None and index.paths == members and not index.changes():
                counts["kept"] += len(members)
                continue
            counts["shards updated"] += 1
            if index is None:
                reid.build_index(members, root / name, **_build_options(options))
                counts["added"] += len(members)
                continue
            _, shard_counts = reid.update_index(root / name, members, **options)
            for key in ("added", "removed", "changed", "kept"):
                counts[key] += shard_counts[key]
        for name in set(old) - set(shards):
            counts["removed"] += len(old[name])
            counts["shards updated"] += 1
            shutil.rmtree(root / name)
        _write_record(root, folder, record["shard_by"], record.get("shard_size"), list(shards))
    return Gallery.open(root), counts


def _build_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in ("batch_size", "num_workers", "skip_bad_images", "progress")}


def _write_record(root: Path, gallery: str | None, shard_by: str, shard_size: int | None, names: list[str]) -> None:
    if gallery is None:
        warnings.warn("the shard set was built from a list of files: updates need the gallery", UserWarning, 2)
    record = {"format": FORMAT, "gallery": gallery, "shard_by": shard_by, "shard_size": shard_size, "shards": names}
    atomic_write_json(root / SHARDS_FILE, record)
    mark(root, INDEX)
