"""What the page knows about the gallery's images without looking at them: identity, camera and folder.

Identity and camera come from the file names of the public layouts (`qaconv.data.datasets.names`; unknown
otherwise), the folder from the path below the gallery folder. The catalog pages through the images with
filters, and tells, for a labelled query, which images are its true matches and which the evaluation protocol
ignores (its identity in its own camera, and junk, identity -1), for the rank of the first true match and AP.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qaconv.data.datasets.names import label_from_name

UNKNOWN = -2  # pid and camera of an image whose name carries none (-1 is junk, a label of its own)


@dataclass(frozen=True)
class Catalog:
    """Per gallery position: `pids`, `cameras` (UNKNOWN when the name carries none) and `folders` (an index
    into `folder_names`)."""

    paths: list[str]
    pids: np.ndarray
    cameras: np.ndarray
    folders: np.ndarray
    folder_names: list[str]

    @classmethod
    def of(cls, paths: list[str], root: str | os.PathLike | None) -> Catalog:
        """The catalog of `paths`, folders relative to `root` (the gallery folder; None: parent folder names)."""
        labels = [label_from_name(p) or (UNKNOWN, UNKNOWN) for p in paths]
        pids = np.array([pid for pid, _ in labels], dtype=np.int64)
        cameras = np.array([camera for _, camera in labels], dtype=np.int64)
        names: dict[str, int] = {}
        folders = np.array([names.setdefault(_folder(p, root), len(names)) for p in paths], dtype=np.int64)
        return cls(paths, pids, cameras, folders, list(names))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labelled(self) -> bool:
        """Whether every image's name carries an identity (the gallery can score a labelled query)."""
        return bool(len(self.pids)) and bool((self.pids != UNKNOWN).all())

    def item(self, position: int) -> dict[str, Any]:
        pid, camera = int(self.pids[position]), int(self.cameras[position])
        return {
            "path": self.paths[position],
            "pid": None if pid == UNKNOWN else pid,
            "camid": None if camera == UNKNOWN else camera,
            "folder": self.folder_names[self.folders[position]],
        }

    def select(self, camera: int | None = None, pid: int | None = None, folder: str | None = None) -> np.ndarray:
        """The positions that pass every filter given, in gallery order."""
        keep = np.ones(len(self.paths), dtype=bool)
        if camera is not None:
            keep &= self.cameras == camera
        if pid is not None:
            keep &= self.pids == pid
        if folder is not None:
            wanted = self.folder_names.index(folder) if folder in self.folder_names else -1
            keep &= self.folders == wanted
        return np.flatnonzero(keep)

    def facets(self) -> dict[str, Any]:
        """The cameras and folders (with their image counts) and the number of identities, for the filters."""
        cameras = Counter(int(c) for c in self.cameras if c != UNKNOWN)
        folders = Counter(int(f) for f in self.folders)
        return {
            "cameras": [{"value": c, "images": n} for c, n in sorted(cameras.items())],
            "folders": [{"value": self.folder_names[f], "images": n} for f, n in sorted(folders.items())],
            "identities": len({int(p) for p in self.pids if p not in (UNKNOWN, -1)}),
            "labelled": self.labelled,
        }

    def judged(self, pid: int, camera: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(true matches, ignored) positions of a query of identity `pid` from `camera`: its identity from other
        cameras are the true matches; its identity from its own camera and junk (identity -1) are ignored."""
        same_id = self.pids == pid
        same_camera = self.cameras == camera if camera is not None else np.zeros_like(same_id)
        return np.flatnonzero(same_id & ~same_camera), np.flatnonzero((same_id & same_camera) | (self.pids == -1))


def _folder(path: str, root: str | os.PathLike | None) -> str:
    parent = Path(path).parent
    if root is not None:
        try:
            relative = parent.relative_to(root)
            return "." if str(relative) == "." else relative.as_posix()
        except ValueError:
            pass
    return parent.name


def first_rank_and_ap(ranks: np.ndarray) -> tuple[int | None, float]:
    """The rank of the first true match and the average precision, from the true matches' 1-based ranks among
    the gallery's judged images (None and 0 when there are no true matches)."""
    if len(ranks) == 0:
        return None, 0.0
    ranks = np.sort(ranks)
    return int(ranks[0]), float(np.mean(np.arange(1, len(ranks) + 1) / ranks))
