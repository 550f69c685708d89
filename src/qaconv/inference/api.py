"""`ReID`: the Python API for a trained model: extract, score, match and explain, search, index.

    reid = ReID.from_checkpoint("runs/market")           # run folder or checkpoint file
    maps = reid.extract(["a.jpg", "b.jpg"])               # [2, C, h, w] feature maps
    reid.score(["a.jpg"], ["b.jpg", "c.jpg"])             # [1, 2] QAConv scores (logits)
    reid.match("a.jpg", "b.jpg").plot("match.png")        # local correspondences, drawn
    reid.build_index("gallery/", "gallery.idx")           # feature maps on disk
    reid.search("q.jpg", GalleryIndex.open("gallery.idx"), topk=10)

Images are paths, PIL images (any mode or size: converted to RGB and resized to the model's input
size) or HxW[xC] uint8 arrays, one or a list; wherever images go, feature maps from `extract` may
go instead. Scores are the eval-mode matcher's logits (higher = more similar). `ReID` orchestrates:
extraction is `qaconv.engine.features.feature_map_batches`, scoring `qaconv.matching`, index
storage `qaconv.inference.index`, search `qaconv.inference.search`.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from qaconv.config import ModelConfig
from qaconv.config.tree import SEARCH_FIRST_STAGES
from qaconv.data.transforms import Resize, build_test_transform
from qaconv.device import resolve_device
from qaconv.engine.checkpoint import load_model, resolve_checkpoint, state_fingerprint
from qaconv.engine.features import feature_map_batches
from qaconv.errors import QAConvError
from qaconv.image_reader import DEFAULT_MAX_PIXELS
from qaconv.inference.correspondence import (
    DEFAULT_MAX_LINES,
    Correspondences,
    local_correspondences,
    plot_correspondences,
)
from qaconv.inference.images import ImageInputs, ImageLike, Images, as_list, gallery_files, load
from qaconv.inference.index import GalleryIndex, IndexWriter, file_stat, write_index
from qaconv.inference.search import SearchResult, global_descriptors, search
from qaconv.inference.shards import Gallery, merge_topk
from qaconv.matching import QAConv, pairwise_scores
from qaconv.models import FeatureMapNet

Batches = Iterator[tuple[Tensor, list[Any]]]
SKIP_HINT = "pass --skip-bad-images (skip_bad_images=True) to index the other images"


@dataclass(frozen=True)
class Match:
    """The score of one image pair with its local correspondences and the images as the model saw them."""

    score: float
    correspondences: Correspondences
    probe: Image.Image
    gallery: Image.Image

    def plot(
        self,
        path: str | os.PathLike | None = None,
        *,
        threshold: float | None = None,
        max_lines: int = DEFAULT_MAX_LINES,
    ) -> Image.Image:
        """Draw the strongest correspondences (see `plot_correspondences`); save to `path` when given."""
        picture = plot_correspondences(
            self.probe, self.gallery, self.correspondences, threshold=threshold, max_lines=max_lines
        )
        if path is not None:
            picture.save(path)
        return picture

    def to_dict(self) -> dict:
        """JSON-ready: the score and every location's best match and contribution, both directions."""
        return self.correspondences.to_dict()


class ReID:
    """A trained feature-map network and QAConv matcher in eval mode, on one device."""

    def __init__(
        self,
        model: FeatureMapNet,
        matcher: QAConv,
        config: ModelConfig,
        *,
        device: torch.device | str | None = None,
        checkpoint: str | os.PathLike | None = None,
        batch_size: int = 32,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if batch_size < 1:
            raise QAConvError(f"batch_size must be at least 1, got {batch_size}")
        if max_pixels < 1:
            raise QAConvError(f"max_pixels must be at least 1, got {max_pixels}")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.matcher = matcher.to(self.device).eval()
        self.config = config
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.batch_size = batch_size
        self.max_pixels = max_pixels  # the largest image read, checked from its header (qaconv.image_reader)
        self._transform = build_test_transform(config.height, config.width)
        self._for_size = max(config.height, config.width)  # how images are decoded for this model (image_reader)
        self._fingerprint: str | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: torch.device | str | None = None,
        batch_size: int = 32,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> ReID:
        """Load a checkpoint file or run folder (its last checkpoint); device None = CUDA if available.

        A checkpoint with NaN or infinite weights (a diverged training) is refused.
        """
        model, matcher, config = load_model(path)
        checkpoint = resolve_checkpoint(path).resolve()
        return cls(model, matcher, config, device=device, checkpoint=checkpoint, batch_size=batch_size,
                   max_pixels=max_pixels)  # fmt: skip

    def __repr__(self) -> str:
        return f"ReID({dataclasses.asdict(self.config)}, device={self.device}, checkpoint={self.checkpoint})"

    @property
    def fingerprint(self) -> str:
        """sha256 of the model's and matcher's state tensors (what a gallery index records)."""
        if self._fingerprint is None:
            self._fingerprint = state_fingerprint(self.model, self.matcher)
        return self._fingerprint

    # ------------------------------------------------------------------ images and maps
    def load(self, image: ImageLike) -> Image.Image:
        """One image as an RGB PIL image (paths are decoded; a bad file raises QAConvError naming it)."""
        return load(image, self.max_pixels)

    def resized(self, image: ImageLike) -> Image.Image:
        """The image as the model sees it: RGB, resized to the input size (bicubic)."""
        return Resize(self.config.height, self.config.width)(load(image, self.max_pixels, self._for_size))

    def _batches(
        self, inputs: ImageInputs, batch_size: int, num_workers: int = 0, progress: str | None = None
    ) -> Batches:
        """(maps, [readable, error messages]) per batch of `inputs` (`feature_map_batches`)."""
        return feature_map_batches(
            self.model, inputs, batch_size=batch_size, num_workers=num_workers, device=self.device, progress=progress
        )

    def extract(self, images: Images) -> Tensor:
        """Feature maps [N, C, h, w] (float32, CPU) of one image or a list, in order, batch by batch."""
        if isinstance(images, Tensor):
            raise QAConvError("extract takes images (paths, PIL images or uint8 arrays), not a tensor")
        items = as_list(images)
        if not items:
            raise QAConvError("no images given")
        inputs = ImageInputs(items, self._transform, max_pixels=self.max_pixels, for_size=self._for_size)
        return torch.cat([maps for maps, _ in self._batches(inputs, self.batch_size)])

    def _maps(self, images: Images, name: str) -> Tensor:
        if isinstance(images, Tensor):
            self.matcher.check_maps(images, name)
            return images
        return self.extract(images)

    # ------------------------------------------------------------------ scoring
    def score(self, a: Images, b: Images) -> Tensor:
        """QAConv scores [len(a), len(b)] (float32, CPU) between two sets of images or feature maps."""
        return pairwise_scores(self.matcher, self._maps(a, "a"), self._maps(b, "b"), device=self.device).cpu()

    def match(self, a: ImageLike, b: ImageLike) -> Match:
        """Score one pair and explain it: per-location contributions and best matches (see Match.plot)."""
        probe, gallery = (load(image, self.max_pixels, self._for_size) for image in (a, b))
        maps = self.extract([probe, gallery])
        corr = local_correspondences(self.matcher, maps[:1], maps[1:])
        return Match(float(corr.score.item()), corr, self.resized(probe), self.resized(gallery))

    def search(
        self,
        query: Images,
        gallery: Images | GalleryIndex | Gallery,
        topk: int = 10,
        *,
        shortlist: int | None = None,
        first_stage: str = "auto",
    ) -> SearchResult:
        """Rank the gallery for each query: images, maps, a GalleryIndex or a Gallery of shards (built with
        this checkpoint; shards are searched one by one and merged exactly, `qaconv.inference.shards`).

        first_stage: `auto` uses an index's location first stage when it has one (its candidates re-scored by
        QAConv; docs/inference.md#the-first-stage) and scores every entry otherwise; `none` scores every entry;
        `descriptors` re-scores the nearest entries by global descriptor. shortlist=N: how many candidates are
        re-scored (default: the location first stage's own number; `auto` without one: descriptors).
        """
        if first_stage not in SEARCH_FIRST_STAGES:
            raise QAConvError(f"first_stage must be one of {', '.join(SEARCH_FIRST_STAGES)}, got {first_stage!r}")
        query_maps = self._maps(query, "query")
        if isinstance(gallery, (GalleryIndex, Gallery)):
            shards = gallery.shards if isinstance(gallery, Gallery) else (gallery,)
            shards[0].check_fingerprint(self.fingerprint, self.checkpoint)
            offsets = Gallery(shards).offsets
            parts = [self._search_index(query_maps, shard, topk, shortlist, first_stage) for shard in shards]
            indices, scores = merge_topk([(i + offset, s) for (i, s), offset in zip(parts, offsets, strict=True)], topk)
            paths = [p for shard in shards for p in shard.paths] if len(shards) > 1 else shards[0].paths
            return SearchResult(indices, scores, [[paths[j] for j in row] for row in indices.tolist()])
        paths = None
        if isinstance(gallery, Tensor):
            gallery_maps = self._maps(gallery, "gallery")
        else:
            items = as_list(gallery)
            if all(isinstance(x, (str, os.PathLike)) for x in items):
                paths = [str(x) for x in items]
            gallery_maps = self.extract(items)
        size = shortlist if first_stage != "none" else None
        indices, scores = search(self.matcher, query_maps, gallery_maps, topk, shortlist_size=size, device=self.device)
        ranked = [[paths[j] for j in row] for row in indices.tolist()] if paths is not None else None
        return SearchResult(indices, scores, ranked)

    def _search_index(
        self, query_maps: Tensor, index: GalleryIndex, topk: int, shortlist: int | None, first_stage: str
    ) -> tuple[Tensor, Tensor]:
        """(positions, scores) of one index's top `topk` for each query, by `first_stage` (see `search`)."""
        locations = index.first_stage if first_stage == "auto" else None
        if first_stage == "none" or (first_stage == "auto" and locations is None and shortlist is None):
            shortlist = None
        elif first_stage == "descriptors" and shortlist is None:
            raise QAConvError("first_stage 'descriptors' needs shortlist=N (--shortlist N): how many to re-score")
        return search(
            self.matcher,
            query_maps,
            index.maps,
            topk,
            shortlist_size=shortlist,
            gallery_descriptors=index.descriptors,
            first_stage=locations,
            device=self.device,
        )

    # ------------------------------------------------------------------ gallery index
    def build_index(
        self,
        gallery: str | os.PathLike | Sequence[str | os.PathLike],
        out: str | os.PathLike,
        *,
        batch_size: int = 64,
        num_workers: int = 0,
        overwrite: bool = False,
        skip_bad_images: bool = False,
        progress: bool = False,
        first_stage: str = "auto",
    ) -> GalleryIndex:
        """Extract the maps of a gallery folder (recursively) or list of image files into an index folder `out`.

        Memory holds one batch of maps; the folder is written under a hidden name and swapped into
        place when complete (see `qaconv.inference.index`). An unreadable image stops the build with
        an error naming it, or, with `skip_bad_images`, is left out with a warning (the manifest lists
        it). `progress` draws a bar when stderr is a terminal. `first_stage`: whether the index also gets a
        location first stage for fast search (`auto`: from 50,000 images when faiss is installed; `locations`;
        `none`; see `qaconv.inference.first_stage`).
        """
        root, paths = gallery_files(gallery)
        manifest = self._manifest(root)
        with write_index(out, len(paths), self._map_shape, manifest, overwrite=overwrite,
                         first_stage=first_stage) as writer:  # fmt: skip
            self._index_images(writer, paths, batch_size, num_workers, skip_bad_images, progress)
            _check_any(writer, paths)
        _warn_skipped(writer.skipped)
        return GalleryIndex.open(out)

    def update_index(
        self,
        index: str | os.PathLike,
        gallery: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        *,
        batch_size: int = 64,
        num_workers: int = 0,
        skip_bad_images: bool = False,
        progress: bool = False,
    ) -> tuple[GalleryIndex, dict[str, int]]:
        """Bring an index up to date with its gallery without a full rebuild: images added to the gallery are
        extracted, removed ones dropped, changed ones (another size or modification time) extracted again, and
        the others keep their maps. `gallery`: the folder (or list of files) now, default the folder the index
        was built from. A location first stage is encoded again with its trained centroids (a
        fresh `build_index` trains new ones). Returns the new index and {"added", "removed", "changed", "kept"}
        counts."""
        old = GalleryIndex.open(index)
        old.check_fingerprint(self.fingerprint, self.checkpoint)
        if gallery is None:
            gallery = old.manifest.get("gallery")
            if gallery is None:
                raise QAConvError(f"index {old.root} was built from a list of files: give the gallery to update from")
        root, paths = gallery_files(gallery)
        changes = old.changes()
        stale = set(changes.changed) | set(changes.missing) | (set(old.paths) if changes.unknown else set())
        position = {path: i for i, path in enumerate(old.paths) if path not in stale}
        counts = {"added": sum(p not in old.paths for p in paths), "removed": len(set(old.paths) - set(paths))}
        counts.update(changed=len(stale & set(paths)), kept=sum(p in position for p in paths))
        trained = old.first_stage
        with write_index(old.root, len(paths), self._map_shape, self._manifest(root), overwrite=True,
                         first_stage="none", trained=trained) as writer:  # fmt: skip
            for is_kept, run in itertools.groupby(paths, key=lambda path: path in position):  # the gallery's order
                run = list(run)
                if not is_kept:
                    self._index_images(writer, run, batch_size, num_workers, skip_bad_images, progress)
                    continue
                for start in range(0, len(run), batch_size):
                    block = run[start : start + batch_size]
                    rows = [position[p] for p in block]
                    writer.add(old.maps[rows].numpy(), old.descriptors[rows].numpy(), block, old.stats[rows].tolist())
            _check_any(writer, paths)
        _warn_skipped(writer.skipped)
        return GalleryIndex.open(old.root), counts

    @property
    def _map_shape(self) -> tuple[int, int, int]:
        return (self.matcher.num_features, self.matcher.height, self.matcher.width)

    def _manifest(self, gallery_root: str | None) -> dict[str, Any]:
        """The fields of an index manifest that describe this model and the gallery."""
        return {
            "fingerprint": self.fingerprint,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "model_config": dataclasses.asdict(self.config),
            "gallery": gallery_root,
        }

    def _index_images(self, writer: IndexWriter, paths: list[str], batch_size: int, num_workers: int,
                      skip_bad_images: bool, progress: bool) -> None:  # fmt: skip
        """Extract `paths` into `writer`, each with its file's statistics as taken before it was read."""
        stats = [file_stat(path) for path in paths]
        inputs = ImageInputs(paths, self._transform, skip_errors=True, max_pixels=self.max_pixels,
                             for_size=self._for_size)  # fmt: skip
        batches = self._batches(inputs, batch_size, num_workers, "index" if progress else None)
        _write_batches(writer, batches, paths, stats, skip_bad_images)


def _warn_skipped(skipped: list[str]) -> None:
    if skipped:
        shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        warnings.warn(f"skipped {len(skipped)} unreadable image(s): {shown}", UserWarning, stacklevel=3)


def _write_batches(writer: IndexWriter, batches: Batches, paths: list[str], stats: list, skip: bool) -> None:
    """Add each batch's readable entries to the index writer; an unreadable image raises unless `skip`."""
    start = 0
    for maps, (readable, errors) in batches:
        batch_paths = paths[start : start + len(maps)]
        batch_stats = stats[start : start + len(maps)]
        start += len(maps)
        for path, ok, error in zip(batch_paths, readable.tolist(), errors, strict=True):
            if not ok and not skip:
                raise QAConvError(f"{error}; {SKIP_HINT}")
            if not ok:
                writer.skip(path)
        keep = readable.bool()
        if keep.any():
            kept = maps[keep]
            flags = keep.tolist()
            kept_paths = [path for path, ok in zip(batch_paths, flags, strict=True) if ok]
            kept_stats = [stat for stat, ok in zip(batch_stats, flags, strict=True) if ok]
            writer.add(kept, global_descriptors(kept), kept_paths, kept_stats)


def _check_any(writer: IndexWriter, paths: list[str]) -> None:
    if not writer.paths:
        raise QAConvError(f"none of the {len(paths)} gallery images could be read; nothing was indexed")
