"""The pixel-cosine floor: Rank-1 and mAP of ranking the gallery by the cosine of raw pixels, no learning.

Every image becomes its greyscale pixels at size x size, centred (its mean subtracted, so blank paper does
not make everything similar) and L2-normalised; a query's score for a gallery image is the dot product.
A trained matcher that does not beat this number has learned nothing that pixels do not already hold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from qaconv.metrics import evaluate_rank


def pixel_vectors(paths: list[str], size: int) -> np.ndarray:
    """[N, size * size] centred, unit-length greyscale pixel vectors."""
    out = np.empty((len(paths), size * size), dtype=np.float32)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            out[i] = np.asarray(image.convert("L").resize((size, size), Image.BILINEAR), dtype=np.float32).ravel()
    out -= out.mean(axis=1, keepdims=True)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def pixel_cosine_floor(dataset: Any, size: int = 64) -> dict[str, float]:
    """{"rank1", "mAP"} of pixel-cosine ranking on `dataset`'s query and gallery (the evaluation protocol's)."""
    query, gallery = dataset.query, dataset.gallery
    q, g = pixel_vectors([r.path for r in query], size), pixel_vectors([r.path for r in gallery], size)
    result = evaluate_rank(
        -(q @ g.T),
        np.array([r.pid for r in query]),
        np.array([r.pid for r in gallery]),
        np.array([r.camid for r in query]),
        np.array([r.camid for r in gallery]),
    )
    return {"rank1": float(result.cmc[0]), "mAP": float(result.mAP)}
