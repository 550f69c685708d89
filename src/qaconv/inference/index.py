"""Gallery index on disk and gallery search: exhaustive QAConv, or a global shortlist re-scored by QAConv.

An index is a folder:

    manifest.json     format, checkpoint fingerprint and path, model config, count, map shape, date
    maps.npy          [N, C, h, w] float16 feature maps, opened memory-mapped (pages load on demand)
    descriptors.npy   [N, C] float32 global descriptors: mean-pooled, L2-normalised feature maps
    paths.json        the N image paths (absolute), in index order

The fingerprint (sha256 of the model's and matcher's state tensors) ties the maps to the network
that made them: searching with another checkpoint is refused, because its scores would be
meaningless. Exhaustive search streams `score_blocks` over the memory-mapped maps and keeps a
running top-k, so memory does not grow with the gallery. Two-stage search ranks the gallery by the
cosine similarity of the global descriptors (faiss when installed, a torch matmul otherwise) and
re-scores only the `shortlist` best candidates per query with QAConv.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from qaconv.engine.neighbors import running_topk
from qaconv.errors import QAConvError
from qaconv.matching import QAConv, score_blocks

if TYPE_CHECKING:
    from qaconv.inference.api import ReID

FORMAT = "qaconv-index/1"
MANIFEST = "manifest.json"
MAPS = "maps.npy"
DESCRIPTORS = "descriptors.npy"
PATHS = "paths.json"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
_DESCRIPTOR_BLOCK = 4096
_SHORTLIST_FLOATS = 2**24


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under `folder` (recursively, by extension), sorted; an empty or missing folder is an error."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise QAConvError(f"gallery folder not found: {folder}")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not images:
        raise QAConvError(f"no images in gallery folder {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return images


@torch.no_grad()
def global_descriptors(maps: Tensor, block: int = _DESCRIPTOR_BLOCK) -> Tensor:
    """[N, C, h, w] maps -> [N, C] float32: the mean over locations, L2-normalised (the cheap first stage)."""
    out = torch.empty(len(maps), maps.shape[1])
    for start in range(0, len(maps), block):
        out[start : start + block] = maps[start : start + block].float().mean(dim=(2, 3))
    return F.normalize(out, dim=1)


@dataclass(frozen=True)
class SearchResult:
    """Ranked gallery entries per query: indices and QAConv scores [Q, k] (best first), paths if known."""

    indices: Tensor
    scores: Tensor
    paths: list[list[str]] | None = None


@dataclass(frozen=True)
class GalleryIndex:
    """An opened index folder: memory-mapped maps, descriptors, paths and the manifest."""

    root: Path
    maps: Tensor
    descriptors: Tensor
    paths: list[str]
    manifest: dict[str, Any]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @classmethod
    def open(cls, path: str | os.PathLike) -> GalleryIndex:
        """Open an index folder written by `build_index`; its maps stay on disk until read."""
        root = Path(path).expanduser()
        if not root.is_dir():
            raise QAConvError(f"index not found: {root}")
        manifest = _read_manifest(root)
        for name in (MAPS, DESCRIPTORS, PATHS):
            if not (root / name).is_file():
                raise QAConvError(f"index {root} is incomplete: {name} is missing (rebuild it with qaconv index build)")
        # copy-on-write mapping: lazily paged like a read-only one, but torch accepts it without a warning
        maps = torch.from_numpy(np.load(root / MAPS, mmap_mode="c"))
        descriptors = torch.from_numpy(np.load(root / DESCRIPTORS))
        paths = json.loads((root / PATHS).read_text())
        count = manifest.get("count")
        if not (len(maps) == len(descriptors) == len(paths) == count):
            raise QAConvError(
                f"index {root} is inconsistent: {len(maps)} maps, {len(descriptors)} descriptors, "
                f"{len(paths)} paths, manifest count {count} (rebuild it with qaconv index build)"
            )
        return cls(root, maps, descriptors, paths, manifest)

    def check_fingerprint(self, fingerprint: str, source: str) -> None:
        """Refuse a checkpoint other than the one the maps were made with."""
        if fingerprint != self.fingerprint:
            raise QAConvError(
                f"index {self.root} was built with another checkpoint ({self.manifest.get('checkpoint')}): "
                f"its fingerprint {self.fingerprint[:16]}... differs from {fingerprint[:16]}... of {source}; "
                "search with the checkpoint it was built with, or rebuild the index (qaconv index build)"
            )


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise QAConvError(f"{root} is not a qaconv index: it has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QAConvError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise QAConvError(f"{path}: unsupported index format {found!r} (expected {FORMAT!r})")
    missing = [k for k in ("fingerprint", "count", "model_config") if k not in manifest]
    if missing:
        raise QAConvError(f"{path} is missing the key(s) {', '.join(missing)}")
    return manifest


def _prepare_out(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise QAConvError(f"--out {out} exists and is not a folder")
    if not any(out.iterdir()):
        return
    if not (out / MANIFEST).is_file():
        raise QAConvError(f"--out {out} is a non-empty folder that is not a qaconv index; choose another --out")
    if not overwrite:
        raise QAConvError(f"--out {out} already holds an index; pass --overwrite to replace it")


def build_index(
    reid: ReID,
    gallery: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    chunk: int = 2048,
    overwrite: bool = False,
    progress: bool = False,
) -> GalleryIndex:
    """Extract the maps of a gallery folder (or a list of image files) and write an index folder to `out`.

    Images are read `chunk` at a time, so memory holds one chunk of float32 maps. The folder is
    written under a temporary name and renamed when complete, so a crash never leaves a half index.
    """
    from tqdm import tqdm

    from qaconv.engine.features import extract_feature_maps

    if isinstance(gallery, (str, os.PathLike)):
        root = str(Path(gallery).expanduser().resolve())
        files = list_images(gallery)
    else:
        root, files = None, [Path(p).expanduser() for p in gallery]
        if not files:
            raise QAConvError("no gallery images given")
    paths = [str(p.resolve()) for p in files]
    out = Path(out).expanduser()
    _prepare_out(out, overwrite)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        matcher = reid.matcher
        shape = (len(paths), matcher.num_features, matcher.height, matcher.width)
        maps = np.lib.format.open_memmap(tmp / MAPS, mode="w+", dtype=np.float16, shape=shape)
        descriptors = np.empty(shape[:2], dtype=np.float32)
        for start in tqdm(range(0, len(paths), chunk), desc="index", disable=not progress, unit="chunk"):
            records = [(p, -1, -1) for p in paths[start : start + chunk]]
            block = extract_feature_maps(
                reid.model,
                records,
                height=reid.config.height,
                width=reid.config.width,
                batch_size=batch_size,
                num_workers=num_workers,
                device=reid.device,
            )
            maps[start : start + len(block)] = block.half().numpy()
            descriptors[start : start + len(block)] = global_descriptors(block).numpy()
        maps.flush()
        del maps
        np.save(tmp / DESCRIPTORS, descriptors)
        (tmp / PATHS).write_text(json.dumps(paths, indent=0) + "\n")
        manifest = {
            "format": FORMAT,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "fingerprint": reid.fingerprint,
            "checkpoint": str(reid.checkpoint) if reid.checkpoint else None,
            "model_config": dataclasses.asdict(reid.config),
            "count": len(paths),
            "map_shape": list(shape[1:]),
            "maps_dtype": "float16",
            "descriptor": "mean over locations of the feature map, L2-normalised",
            "gallery": root,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return GalleryIndex.open(out)


def shortlist(query_descriptors: Tensor, gallery_descriptors: Tensor, n: int) -> Tensor:
    """[Q, n] gallery indices with the highest descriptor cosine similarity per query (faiss if installed).

    Without faiss, queries go in chunks whose similarity rows take at most 64 MiB, then torch.topk.
    """
    n = min(n, len(gallery_descriptors))
    q = query_descriptors.float().contiguous()
    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is not None:
        flat = faiss.IndexFlatIP(q.shape[1])
        flat.add(np.ascontiguousarray(gallery_descriptors.float().numpy()))
        _, found = flat.search(np.ascontiguousarray(q.numpy()), n)
        return torch.from_numpy(found).long()
    gallery_descriptors = gallery_descriptors.float()
    rows = max(1, _SHORTLIST_FLOATS // len(gallery_descriptors))
    return torch.cat([(q[i : i + rows] @ gallery_descriptors.T).topk(n, dim=1).indices for i in range(0, len(q), rows)])


@torch.no_grad()
def search(
    matcher: QAConv,
    query: Tensor,
    gallery: Tensor,
    topk: int = 10,
    *,
    shortlist_size: int | None = None,
    gallery_descriptors: Tensor | None = None,
    prob_block: int = 64,
    gal_block: int = 4096,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """(indices, scores), both [Q, min(topk, G)], best first (ties: lower gallery index first).

    Exhaustive QAConv over all query x gallery pairs when `shortlist_size` is None; otherwise each
    query re-scores only its `shortlist_size` nearest gallery entries by global descriptor
    (`gallery_descriptors`, computed from the maps when not given).
    """
    matcher.check_maps(query, "query")
    matcher.check_maps(gallery, "gallery")
    if topk < 1:
        raise QAConvError(f"--topk must be at least 1, got {topk}")
    if len(gallery) == 0:
        raise QAConvError("the gallery is empty")
    k = min(topk, len(gallery))
    kwargs = {"prob_block": prob_block, "gal_block": gal_block, "dtype": dtype, "device": device}
    if shortlist_size is None:
        indices, scores = running_topk(
            score_blocks(matcher, query, gallery, **kwargs), len(query), k, exclude_self=False
        )
        return indices.cpu(), scores.cpu()
    if shortlist_size < k:
        raise QAConvError(f"--shortlist ({shortlist_size}) must be at least --topk ({topk})")
    if gallery_descriptors is None:
        gallery_descriptors = global_descriptors(gallery)
    candidates = shortlist(global_descriptors(query), gallery_descriptors, shortlist_size).sort(dim=1).values
    indices = torch.empty(len(query), k, dtype=torch.long)
    scores = torch.empty(len(query), k)
    for i, cand in enumerate(candidates):
        rescored = torch.cat([b[0] for _, _, b in score_blocks(matcher, query[i : i + 1], gallery[cand], **kwargs)])
        best, order = rescored.cpu().sort(descending=True, stable=True)  # ties: lower index, as cand is sorted
        indices[i], scores[i] = cand[order[:k]], best[:k]
    return indices, scores
