"""What the page knows about the gallery's images without looking at them: identity, camera and folder.

Identity and camera come from the file names of the public layouts (`qaconv.data.datasets.names`; unknown
otherwise), the folder from the path below the gallery folder. The catalog pages through the images with
filters, and tells, for a labelled query, which images are its true matches and which the evaluation protocol
ignores (its identity in its own camera, and junk, identity -1), for the rank of the first true match and AP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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
        top = os.path.normpath(root) if root is not None else None
        folders = np.array([names.setdefault(_folder(p, top), len(names)) for p in paths], dtype=np.int64)
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
        cameras, camera_counts = np.unique(self.cameras[self.cameras != UNKNOWN], return_counts=True)
        folders, folder_counts = np.unique(self.folders, return_counts=True)
        return {
            "cameras": [{"value": int(c), "images": int(n)} for c, n in zip(cameras, camera_counts, strict=True)],
            "folders": [
                {"value": self.folder_names[f], "images": int(n)} for f, n in zip(folders, folder_counts, strict=True)
            ],
            "identities": len(np.setdiff1d(self.pids, [UNKNOWN, -1])),
            "labelled": self.labelled,
        }

    def judged(self, pid: int, camera: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(true matches, ignored) positions of a query of identity `pid` from `camera`: its identity from other
        cameras are the true matches; its identity from its own camera and junk (identity -1) are ignored."""
        same_id = self.pids == pid
        same_camera = self.cameras == camera if camera is not None else np.zeros_like(same_id)
        return np.flatnonzero(same_id & ~same_camera), np.flatnonzero((same_id & same_camera) | (self.pids == -1))


def _folder(path: str, top: str | None) -> str:
    """The folder of `path` below `top` ("." for `top` itself), or its parent folder's name outside it."""
    parent = os.path.dirname(path)
    if top is not None:
        if parent == top:
            return "."
        if parent.startswith(top + os.sep):
            return parent[len(top) + 1 :]
    return os.path.basename(parent)


def first_rank_and_ap(ranks: np.ndarray) -> tuple[int | None, float]:
    """The rank of the first true match and the average precision, from the true matches' 1-based ranks among
    the gallery's judged images (None and 0 when there are no true matches)."""
    if len(ranks) == 0:
        return None, 0.0
    ranks = np.sort(ranks)
    return int(ranks[0]), float(np.mean(np.arange(1, len(ranks) + 1) / ranks))
