"""`GalleryService`: what the web app does with one model and one gallery, without any HTTP.

The gallery is one index or several shards (`qaconv.inference.shards.Gallery`). The service searches it for
an uploaded image, draws the correspondence picture of the query and a hit, pages through the gallery's images
with filters (`qaconv.serve.catalog`), gives a labelled query's rank of the first true match and AP, exports a
search's results (CSV, JSON, the HTML report), adds uploaded images to the gallery (when the server was given
a folder for them), and hands out the gallery's own images and nothing else: a path is accepted only when it
is, string for string, one the indexes list. The model is shared by every request, so inference runs under a
lock (one request at a time; each uses all of torch's threads). Memory is bounded by design: an upload is
refused from its header above `max_pixels`, at most two are decoded at once, and a query is reduced on arrival
to the model's input size, which is all that search and the correspondence picture use.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from qaconv.config.tree import SEARCH_FIRST_STAGES
from qaconv.data.datasets.names import label_from_name
from qaconv.image_reader import DEFAULT_MAX_PIXELS
from qaconv.inference import GalleryIndex, ReID
from qaconv.inference.search import judged_ranks, score_all
from qaconv.inference.shards import SHARDS_FILE, Gallery, update_shards
from qaconv.io import IMAGE_EXTENSIONS
from qaconv.serve.catalog import Catalog, first_rank_and_ap
from qaconv.serve.errors import Conflict, NotFound, RequestError
from qaconv.serve.uploads import DEFAULT_MAX_UPLOAD_BYTES, QueryStore, decode_upload, query_id

MAX_TOPK = 1000
MAX_ADDED_AT_ONCE = 64
DECODING_AT_ONCE = 2
EXPORTS = {"csv": "text/csv", "json": "application/json", "html": "text/html"}


def identity(path: str) -> tuple[int | None, int | None]:
    """(pid, camera) as written in a file name of one of the public layouts, else (None, None)."""
    return label_from_name(path) or (None, None)


class GalleryService:
    """Search, browsing, evaluation, exports, additions, match pictures and image files for one `ReID` model
    and one `Gallery` (`add_to`: the folder uploaded gallery images are written to; None: no additions)."""

    def __init__(
        self,
        reid: ReID,
        gallery: Gallery | GalleryIndex,
        *,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        queries: QueryStore | None = None,
        add_to: str | os.PathLike | None = None,
        index_paths: list[str] | None = None,
    ) -> None:
        if max_upload_bytes < 1:
            raise RequestError(f"the upload limit must be at least 1 byte, got {max_upload_bytes}")
        if isinstance(gallery, GalleryIndex):
            gallery = Gallery((gallery,), gallery.manifest.get("gallery"))
        self.reid = reid
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels
        self.queries = queries or QueryStore()
        self.add_to = Path(add_to).expanduser().resolve() if add_to is not None else None
        self.index_paths = index_paths or [str(s.root) for s in gallery.shards]
        self._results: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._decoding = threading.BoundedSemaphore(DECODING_AT_ONCE)
        self._use(gallery)

    def _use(self, gallery: Gallery) -> None:
        self.gallery = gallery
        self.catalog = Catalog.of(gallery.paths, gallery.source)
        self._paths = frozenset(self.catalog.paths)

    @classmethod
    def open(
        cls,
        index: str | os.PathLike | list[str | os.PathLike],
        checkpoint: str | os.PathLike,
        *,
        device: str | None = None,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        add_to: str | os.PathLike | None = None,
    ) -> GalleryService:
        """Open index folders or shard sets and load a checkpoint; refuse a checkpoint other than the indexes'.
        `add_to` must lie in the gallery folder the indexes were built from (an update then finds its images)."""
        paths = [str(p) for p in (index if isinstance(index, list) else [index])]
        gallery = Gallery.open(paths)
        if add_to is not None:
            _check_add_to(Path(add_to), gallery, paths)
        service = cls(
            ReID.from_checkpoint(checkpoint, device=device),
            gallery,
            max_upload_bytes=max_upload_bytes,
            max_pixels=max_pixels,
            add_to=add_to,
            index_paths=paths,
        )
        service.check_fingerprint()
        return service

    @property
    def fingerprint_matches(self) -> bool:
        """Whether the model is the one the index's maps were made with (else its scores would be meaningless)."""
        return self.gallery.fingerprint == self.reid.fingerprint

    @property
    def has_first_stage(self) -> bool:
        return all(s.manifest.get("first_stage") for s in self.gallery.shards)

    def summary(self) -> dict[str, Any]:
        """The gallery and the model, for GET /api/health."""
        first = self.gallery.shards[0].manifest
        return {
            "status": "ok" if self.fingerprint_matches else "fingerprint mismatch",
            "index": {
                "path": self.gallery.describe(),
                "shards": len(self.gallery.shards),
                "images": len(self.gallery),
                "map_shape": first.get("map_shape"),
                "created": first.get("created"),
                "fingerprint": self.gallery.fingerprint,
                "shortlist": True,
                "first_stage": self.has_first_stage,
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
            "facets": self.catalog.facets(),
            "additions": self.add_to is not None,
        }

    def browse(
        self,
        offset: int = 0,
        limit: int = 60,
        camera: int | None = None,
        pid: int | None = None,
        folder: str | None = None,
    ) -> dict[str, Any]:
        """One page of the gallery's images that pass the filters (path, pid, camid, folder), in gallery order."""
        if offset < 0 or not 1 <= limit <= MAX_TOPK:
            raise RequestError(f"offset must be >= 0 and limit between 1 and {MAX_TOPK}, got {offset} and {limit}")
        selected = self.catalog.select(camera, pid, folder)
        items = [self.catalog.item(int(p)) for p in selected[offset : offset + limit]]
        return {"total": len(selected), "offset": offset, "items": items}

    def image_path(self, path: str) -> Path:
        """The file of one of the gallery's images; any other path (or one gone from disk) is NotFound."""
        if path not in self._paths:
            raise NotFound(f"{path!r} is not an image of the index {self.gallery.describe()}")
        file = Path(path)
        if not file.is_file():
            raise NotFound(f"{path} is listed in the index but no longer on disk (qaconv index update)")
        return file

    def search(
        self, data: bytes, name: str, topk: int = 10, shortlist: int | None = None, first_stage: str = "auto"
    ) -> dict[str, Any]:
        """Rank the gallery for an uploaded image: {"query": ID, "hits": [{"path", "score", "pid", "camid",
        "folder"}], "search", "seconds", and the query's pid and camid when its file `name` carries them}."""
        if not 1 <= topk <= MAX_TOPK:
            raise RequestError(f"topk must be between 1 and {MAX_TOPK}, got {topk}")
        if first_stage not in SEARCH_FIRST_STAGES:
            raise RequestError(f"first_stage must be one of {', '.join(SEARCH_FIRST_STAGES)}, got {first_stage!r}")
        if shortlist is not None and shortlist < topk:
            raise RequestError(f"shortlist ({shortlist}) must be at least topk ({topk})")
        self.check_fingerprint()
        image = self._decode(data, name)
        start = time.perf_counter()
        with self._lock:
            result = self.reid.search(image, self.gallery, topk=topk, shortlist=shortlist, first_stage=first_stage)
        seconds = time.perf_counter() - start
        key = query_id(data)
        self.queries.put(key, image)
        hits = [
            {**self.catalog.item(position), "score": score}
            for position, score in zip(result.indices[0].tolist(), result.scores[0].tolist(), strict=True)
        ]
        mode = self.gallery.search_mode(first_stage, shortlist)
        answer = {
            "query": key,
            "name": name,
            **_label(name),
            "hits": hits,
            "search": mode,
            "seconds": round(seconds, 4),
        }
        self._remember(key, answer)
        return answer

    def evaluate(self, query: str) -> dict[str, Any]:
        """For a searched query whose name carries its identity, in a labelled gallery: the rank of its first true
        match and its average precision over the whole gallery (every entry scored: exact, but as slow as an
        exhaustive search), under the evaluation protocol (docs/evaluation.md)."""
        answer = self._result(query)
        if answer.get("pid") is None:
            raise RequestError(f"{answer['name']}: the query's file name carries no identity (e.g. 0002_c1s1_...jpg)")
        if not self.catalog.labelled:
            raise RequestError("the gallery's file names do not all carry identities: no rank or AP to compute")
        truth, ignore = self.catalog.judged(answer["pid"], answer.get("camid"))
        start = time.perf_counter()
        with self._lock:
            maps = self.reid.extract([self.queries.get(query)])
            scores = score_all(self.reid.matcher, maps, [s.maps for s in self.gallery.shards], device=self.reid.device)
        first, ap = first_rank_and_ap(judged_ranks(scores, truth, ignore))
        return {
            "query": query,
            "pid": answer["pid"],
            "true_matches": len(truth),
            "ignored": len(ignore),
            "first_true_match_rank": first,
            "average_precision": ap,
            "seconds": round(time.perf_counter() - start, 4),
        }

    def export(self, query: str, form: str) -> tuple[bytes, str, str]:
        """A searched query's results as (bytes, media type, file name): CSV, JSON or the self-contained HTML report
        (the query and its ranked thumbnails)."""
        if form not in EXPORTS:
            raise RequestError(f"format must be one of {', '.join(EXPORTS)}, got {form!r}")
        answer = self._result(query)
        stem = f"qaconv-search-{Path(answer['name']).stem or query}"
        if form == "json":
            return json.dumps(answer, indent=2).encode(), EXPORTS[form], f"{stem}.json"
        if form == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(["rank", "score", "path", "pid", "camid", "folder"])
            for rank, hit in enumerate(answer["hits"], 1):
                writer.writerow([rank, f"{hit['score']:.6f}", hit["path"], hit["pid"], hit["camid"], hit["folder"]])
            return buffer.getvalue().encode(), EXPORTS[form], f"{stem}.csv"
        return _report(answer, self.queries.get(query), self.gallery.describe()).encode(), EXPORTS[form], f"{stem}.html"

    def add_images(self, files: list[tuple[str, bytes]]) -> dict[str, Any]:
        """Write uploaded images into the additions folder and bring the indexes up to date (only what changed is
        extracted; a shard set updates only the shards concerned). Each file is checked before any is written."""
        if self.add_to is None:
            raise RequestError("this server takes no new gallery images (start it with --add-to FOLDER)")
        if not 1 <= len(files) <= MAX_ADDED_AT_ONCE:
            raise RequestError(f"add between 1 and {MAX_ADDED_AT_ONCE} images at once, got {len(files)}")
        for name, data in files:
            self._decode(data, name)
        self.add_to.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with self._lock:
            written = [_write_new(self.add_to, name, data) for name, data in files]
            counts = self._update()
        return {"added": [str(p) for p in written], "counts": counts, "images": len(self.gallery),
                "seconds": round(time.perf_counter() - start, 4)}  # fmt: skip

    def match(self, query: str, gallery: str) -> tuple[bytes, float]:
        """The PNG correspondence picture of a searched query and one gallery image, and their score."""
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
                f"the index {self.gallery.describe()} was built with another checkpoint "
                f"({self.gallery.shards[0].manifest.get('checkpoint')}) than the server's model "
                f"({self.reid.checkpoint}): their fingerprints differ; serve it with the checkpoint it was built "
                "with, or rebuild it (qaconv index build)"
            )

    # -------------------------------------------------------------------------------------------- helpers

    def _decode(self, data: bytes, name: str) -> Any:
        with self._decoding:  # a few decodes at a time: each may briefly hold a large image
            size = max(self.reid.config.height, self.reid.config.width)
            return self.reid.resized(decode_upload(data, name, self.max_upload_bytes, self.max_pixels, size))

    def _remember(self, key: str, answer: dict[str, Any]) -> None:
        self._results[key] = answer
        self._results.move_to_end(key)
        while len(self._results) > self.queries.capacity:
            self._results.popitem(last=False)

    def _result(self, query: str) -> dict[str, Any]:
        self.queries.get(query)  # NotFound, with its explanation, for a query this server does not know
        if query not in self._results:
            raise NotFound(f"query {query!r} has no results: search with it first")
        return self._results[query]

    def _update(self) -> dict[str, int]:
        """Bring every index (or shard set) up to date with its gallery, then search the new one."""
        counts: dict[str, int] = {}
        for path in self.index_paths:
            if (Path(path) / SHARDS_FILE).is_file():
                _, done = update_shards(self.reid, path)
            else:
                _, done = self.reid.update_index(path)
            for key, value in done.items():
                counts[key] = counts.get(key, 0) + value
        self._use(Gallery.open(self.index_paths))
        return counts


def _label(name: str) -> dict[str, int | None]:
    pid, camid = identity(name)
    return {"pid": pid, "camid": camid}


def _check_add_to(folder: Path, gallery: Gallery, paths: list[str]) -> None:
    """--add-to must be inside the folder the indexes were built from, so that an update finds the new images."""
    from qaconv.errors import QAConvError

    if gallery.source is None:
        raise QAConvError(
            f"--add-to: the indexes {', '.join(paths)} were not built from one gallery folder, so new images would "
            "not be found by an update; build them with qaconv index build --gallery DIR"
        )
    resolved = folder.expanduser().resolve()
    if not resolved.is_relative_to(Path(gallery.source)):
        raise QAConvError(f"--add-to {folder} must be a folder inside the gallery {gallery.source}")
    if resolved.exists() and not resolved.is_dir():
        raise QAConvError(f"--add-to {folder} exists and is not a folder")


def _write_new(folder: Path, name: str, data: bytes) -> Path:
    """Write an uploaded image under a safe, new name in `folder` (its own name's letters, numbers, - _ .)."""
    stem, suffix = os.path.splitext(os.path.basename(name))
    suffix = suffix.lower() if suffix.lower() in IMAGE_EXTENSIONS else ".jpg"
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip(".") or "upload"
    path, n = folder / f"{stem}{suffix}", 1
    while path.exists():
        path, n = folder / f"{stem}-{n}{suffix}", n + 1
    temporary = folder / f".{path.name}.partial"
    temporary.write_bytes(data)
    os.replace(temporary, path)
    return path


def _report(answer: dict[str, Any], query_image: Any, gallery: str) -> str:
    """The self-contained HTML report of one search: the query framed, then its ranked hits."""
    from qaconv.viz.ranked_lists import BLUE
    from qaconv.viz.thumbnail_page import Thumb, ThumbRow, thumbnail_page

    buffer = io.BytesIO()
    query_image.save(buffer, format="PNG")
    thumbs = [Thumb(answer["name"], ["query"], BLUE, data=buffer.getvalue())]
    thumbs += [
        Thumb(hit["path"], [f"#{rank} {hit['score']:.2f}", Path(hit["path"]).name])
        for rank, hit in enumerate(answer["hits"], 1)
    ]
    intro = f"gallery {gallery}, {answer['search']}, {len(answer['hits'])} hits"
    return thumbnail_page("qaconv search", [("", [ThumbRow("", thumbs)])], intro=intro)
