"""`ReID`: the Python API for a trained model: extract, score, match and explain, search.

    reid = ReID.from_checkpoint("runs/market")           # run folder or checkpoint file
    maps = reid.extract(["a.jpg", "b.jpg"])               # [2, C, h, w] feature maps
    reid.score(["a.jpg"], ["b.jpg", "c.jpg"])             # [1, 2] QAConv scores (logits)
    reid.match("a.jpg", "b.jpg").plot("match.png")        # local correspondences, drawn
    reid.search("q.jpg", GalleryIndex.open("gallery.idx"), topk=10)

Images are paths, PIL images (any mode or size: converted to RGB and resized to the model's input
size) or HxW[xC] uint8 arrays, one or a list; wherever images go, feature maps from `extract` may
go instead. Scores are the eval-mode matcher's logits (higher = more similar).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from qaconv.config import ModelConfig
from qaconv.data.loader import load_image
from qaconv.data.transforms import Resize, build_test_transform, to_rgb
from qaconv.device import resolve_device
from qaconv.engine.checkpoint import state_fingerprint
from qaconv.engine.features import autocast_context
from qaconv.errors import QAConvError
from qaconv.inference.correspondence import (
    DEFAULT_MAX_LINES,
    Correspondences,
    local_correspondences,
    plot_correspondences,
)
from qaconv.inference.index import GalleryIndex, SearchResult, build_index, search
from qaconv.matching import QAConv, pairwise_scores
from qaconv.models import FeatureMapNet

ImageLike = str | os.PathLike | Image.Image | np.ndarray
Images = ImageLike | Sequence[ImageLike] | Tensor


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
    ) -> None:
        if batch_size < 1:
            raise QAConvError(f"batch_size must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.matcher = matcher.to(self.device).eval()
        self.config = config
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.batch_size = batch_size
        self._transform = build_test_transform(config.height, config.width)
        self._fingerprint: str | None = None

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: torch.device | str | None = None, batch_size: int = 32
    ) -> ReID:
        """Load a checkpoint file or run folder (its last checkpoint); device None = CUDA if available."""
        from qaconv.engine.checkpoint import load_model, resolve_checkpoint

        model, matcher, config = load_model(path)
        return cls(
            model, matcher, config, device=device, checkpoint=resolve_checkpoint(path).resolve(), batch_size=batch_size
        )

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
        if isinstance(image, (str, os.PathLike)):
            return load_image(image)
        if isinstance(image, Image.Image):
            return to_rgb(image)
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim not in (2, 3):
                raise QAConvError(f"image arrays must be HxW or HxWxC uint8, got {image.dtype} {list(image.shape)}")
            return to_rgb(Image.fromarray(image))
        raise QAConvError(f"expected an image path, PIL image or uint8 array, got {type(image).__name__}")

    def resized(self, image: ImageLike) -> Image.Image:
        """The image as the model sees it: RGB, resized to the input size (bicubic)."""
        return Resize(self.config.height, self.config.width)(self.load(image))

    @staticmethod
    def _as_list(images: Images) -> list[ImageLike]:
        if isinstance(images, (str, os.PathLike, Image.Image)) or (isinstance(images, np.ndarray) and images.ndim < 4):
            return [images]
        return list(images)

    @torch.no_grad()
    def extract(self, images: Images) -> Tensor:
        """Feature maps [N, C, h, w] (float32, CPU) of one image or a list, in order, batch by batch."""
        if isinstance(images, Tensor):
            raise QAConvError("extract takes images (paths, PIL images or uint8 arrays), not a tensor")
        items = self._as_list(images)
        if not items:
            raise QAConvError("no images given")
        dtype = torch.float16 if self.device.type == "cuda" else None
        chunks = []
        for start in range(0, len(items), self.batch_size):
            batch = torch.stack([self._transform(self.load(x)) for x in items[start : start + self.batch_size]])
            with autocast_context(self.device, dtype):
                chunks.append(self.model(batch.to(self.device)).float().cpu())
        return torch.cat(chunks)

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
        probe, gallery = self.load(a), self.load(b)
        maps = self.extract([probe, gallery])
        corr = local_correspondences(self.matcher, maps[:1], maps[1:])
        return Match(float(corr.score.item()), corr, self.resized(probe), self.resized(gallery))

    def search(
        self, query: Images, gallery: Images | GalleryIndex, topk: int = 10, *, shortlist: int | None = None
    ) -> SearchResult:
        """Rank the gallery (images, maps or a GalleryIndex built with this checkpoint) for each query.

        shortlist=N re-scores only the N nearest entries by global descriptor (fast for big galleries);
        None scores every entry with QAConv.
        """
        query_maps = self._maps(query, "query")
        paths = descriptors = None
        if isinstance(gallery, GalleryIndex):
            gallery.check_fingerprint(self.fingerprint, str(self.checkpoint or "this model"))
            gallery_maps, descriptors, paths = gallery.maps, gallery.descriptors, gallery.paths
        elif isinstance(gallery, Tensor):
            gallery_maps = self._maps(gallery, "gallery")
        else:
            items = self._as_list(gallery)
            if all(isinstance(x, (str, os.PathLike)) for x in items):
                paths = [str(x) for x in items]
            gallery_maps = self.extract(items)
        indices, scores = search(
            self.matcher,
            query_maps,
            gallery_maps,
            topk,
            shortlist_size=shortlist,
            gallery_descriptors=descriptors,
            device=self.device,
        )
        ranked = [[paths[j] for j in row] for row in indices.tolist()] if paths is not None else None
        return SearchResult(indices, scores, ranked)

    def build_index(
        self, gallery: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike, **options
    ) -> GalleryIndex:
        """Write a gallery index of a folder or list of images (see `qaconv.inference.index.build_index`)."""
        return build_index(self, gallery, out, **options)
