"""`GalleryService`: what the web app does with one model and one gallery index, without any HTTP.

It searches the index for an uploaded image, draws the correspondence picture of the query and a
hit, and hands out the index's own images, and nothing else: a gallery path is accepted only when
it is, string for string, one of the paths the index lists. The model is shared by every request,
so inference runs under a lock (one request at a time; each uses all of torch's threads). Memory is
bounded by design: an upload is refused from its header above `max_pixels`, at most two are decoded at
once, and a query is reduced on arrival to the model's input size, which is all that search and the
correspondence picture use, so the query store holds small images only.
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from qaconv.image_reader import DEFAULT_MAX_PIXELS
from qaconv.inference import GalleryIndex, ReID
from qaconv.serve.errors import Conflict, NotFound, RequestError
from qaconv.serve.uploads import DEFAULT_MAX_UPLOAD_BYTES, QueryStore, decode_upload, query_id

MAX_TOPK = 1000
DECODING_AT_ONCE = 2
# Market-1501-style names start with the identity and camera: 0002_c1s1_000451_03.jpg, 0001_c2_f0046182.jpg.
_IDENTITY = re.compile(r"(-?\d+)_c(\d+)")


def identity(path: str) -> tuple[int | None, int | None]:
    """(pid, camera) as written at the start of a Market-style file name, else (None, None)."""
    found = _IDENTITY.match(Path(path).name)
    return (int(found.group(1)), int(found.group(2))) if found else (None, None)


class GalleryService:
    """Search, match pictures and image files for one `ReID` model and one `GalleryIndex`."""

    def __init__(
        self,
        reid: ReID,
        index: GalleryIndex,
        *,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        queries: QueryStore | None = None,
    ) -> None:
        if max_upload_bytes < 1:
            raise RequestError(f"the upload limit must be at least 1 byte, got {max_upload_bytes}")
        self.reid = reid
        self.index = index
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels
        self.queries = queries or QueryStore()
        self._paths = frozenset(index.paths)
        self._lock = threading.Lock()
        self._decoding = threading.BoundedSemaphore(DECODING_AT_ONCE)

    @classmethod
    def open(
        cls,
        index: str | os.PathLike,
        checkpoint: str | os.PathLike,
        *,
        device: str | None = None,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> GalleryService:
        """Open an index folder and load a checkpoint; refuse a checkpoint other than the index's."""
        service = cls(
            ReID.from_checkpoint(checkpoint, device=device),
            GalleryIndex.open(index),
            max_upload_bytes=max_upload_bytes,
            max_pixels=max_pixels,
        )
        service.check_fingerprint()
        return service

    @property
    def fingerprint_matches(self) -> bool:
        """Whether the model is the one the index's maps were made with (else its scores would be meaningless)."""
        return self.index.manifest.get("fingerprint") == self.reid.fingerprint

    @property
    def has_shortlist(self) -> bool:
        """Whether the index holds global descriptors, so that two-stage search is possible."""
        descriptors = getattr(self.index, "descriptors", None)
        return descriptors is not None and len(descriptors) == len(self.index)

    def summary(self) -> dict[str, Any]:
        """The index and the model, for GET /api/health."""
        manifest = self.index.manifest
        return {
            "status": "ok" if self.fingerprint_matches else "fingerprint mismatch",
            "index": {
                "path": str(self.index.root),
                "images": len(self.index),
                "map_shape": manifest.get("map_shape"),
                "created": manifest.get("created"),
                "fingerprint": manifest.get("fingerprint"),
                "shortlist": self.has_shortlist,
            },
            "model": {
                "checkpoint": str(self.reid.checkpoint) if self.reid.checkpoint else None,
                "input_size": [self.reid.config.height, self.reid.config.width],
                "device": str(self.reid.device),
                "fingerprint": self.reid.fingerprint,
            },
            "fingerprint_match": self.fingerprint_matches,
            "max_upload_bytes": self.max_upload_bytes,
            "max_topk": MAX_TOPK,
        }

    def gallery(self, offset: int = 0, limit: int = 60) -> dict[str, Any]:
        """One page of the index's images (path, pid, camid), in index order."""
        if offset < 0 or not 1 <= limit <= MAX_TOPK:
            raise RequestError(f"offset must be >= 0 and limit between 1 and {MAX_TOPK}, got {offset} and {limit}")
        paths = self.index.paths[offset : offset + limit]
        return {"total": len(self.index), "offset": offset, "items": [{"path": p, **self._identity(p)} for p in paths]}

    def image_path(self, path: str) -> Path:
        """The file of one of the index's images; any other path (or one gone from disk) is NotFound."""
        if path not in self._paths:
            raise NotFound(f"{path!r} is not an image of the index {self.index.root}")
        file = Path(path)
        if not file.is_file():
            raise NotFound(f"{path} is listed in the index but no longer on disk (rebuild the index)")
        return file

    def search(self, data: bytes, name: str, topk: int = 10, shortlist: int | None = None) -> dict[str, Any]:
        """Rank the index for an uploaded image: {"query": ID, "hits": [{"path", "score", "pid", "camid"}], ...}.

        The answer also gives the query's pid and camid when its file `name` carries them.
        """
        if not 1 <= topk <= MAX_TOPK:
            raise RequestError(f"topk must be between 1 and {MAX_TOPK}, got {topk}")
        if shortlist is not None:
            if not self.has_shortlist:
                raise RequestError(f"the index {self.index.root} has no global descriptors for a shortlist")
            if shortlist < topk:
                raise RequestError(f"shortlist ({shortlist}) must be at least topk ({topk})")
        self.check_fingerprint()
        with self._decoding:  # a few decodes at a time: each may briefly hold a large image
            size = max(self.reid.config.height, self.reid.config.width)
            image = self.reid.resized(decode_upload(data, name, self.max_upload_bytes, self.max_pixels, size))
        start = time.perf_counter()
        with self._lock:
            result = self.reid.search(image, self.index, topk=topk, shortlist=shortlist)
        seconds = time.perf_counter() - start
        key = query_id(data)
        self.queries.put(key, image)
        hits = [
            {"path": path, "score": score, **self._identity(path)}
            for path, score in zip(result.paths[0], result.scores[0].tolist(), strict=True)
        ]
        mode = "exhaustive" if shortlist is None else f"two-stage (shortlist {shortlist})"
        return {"query": key, **self._identity(name), "hits": hits, "search": mode, "seconds": round(seconds, 4)}

    def match(self, query: str, gallery: str) -> tuple[bytes, float]:
        """The PNG correspondence picture of a searched query and one index image, and their score."""
        image = self.queries.get(query)
        file = self.image_path(gallery)
        with self._lock:
            match = self.reid.match(image, file)
            picture = match.plot()
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        return buffer.getvalue(), match.score

    def check_fingerprint(self) -> None:
        """Raise Conflict unless the model is the one the index was built with."""
        if not self.fingerprint_matches:
            raise Conflict(
                f"the index {self.index.root} was built with another checkpoint "
                f"({self.index.manifest.get('checkpoint')}) than the server's model ({self.reid.checkpoint}): "
                "their fingerprints differ; serve it with the checkpoint it was built with, or rebuild it "
                "(qaconv index build)"
            )

    @staticmethod
    def _identity(path: str) -> dict[str, int | None]:
        pid, camid = identity(path)
        return {"pid": pid, "camid": camid}
