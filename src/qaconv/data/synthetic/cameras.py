"""Cameras: each draws its own photometry, framing, viewpoints and occluders from its style's ranges,
and `photograph` applies its effects to a rendered crop.

A camera is a plain dict (pickles cheaply); its `bg_seed` keys its background (backgrounds.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from qaconv.data.synthetic.styles import OCCLUDER_COLOURS, STYLE_TABLE, palette_colour


def sample_camera(rng: np.random.Generator, style: str, index: int) -> dict[str, Any]:
    """Camera `index` (0-based) of `style`, with values drawn from the style's ranges."""
    st = STYLE_TABLE[style]
    cast = 1.0 + np.asarray(st.cast_bias) + rng.uniform(-st.cast, st.cast, 3)
    cast /= cast.mean()
    views = rng.dirichlet([2.0, 2.0, 1.5])  # front, back, side: each camera sees people from its own angles
    preferred = st.occluders[int(rng.integers(len(st.occluders)))]
    return {
        "index": index,
        "gain": float(rng.uniform(*st.gain)),
        "cast": cast.astype(np.float32).tolist(),
        "gamma": float(rng.uniform(*st.gamma)),
        "blur": float(rng.uniform(*st.blur)),
        "lowres": float(rng.uniform(*st.lowres)),
        "noise": float(rng.uniform(*st.noise)),
        "scale": float(rng.uniform(*st.scale)),
        "occlusion": float(rng.uniform(*st.occlusion)),
        "occluder": preferred,
        "occ_colour": palette_colour(rng, OCCLUDER_COLOURS),
        "views": views.tolist(),
        "position": float(rng.uniform(0, 400)),  # metres along the walkway, for plausible frame numbers
        "bg_seed": int(rng.integers(2**31)),
    }


def photograph(img: np.ndarray, camera: dict[str, Any], rng: np.random.Generator) -> Image.Image:
    """The camera's view of a scene img [H, W, 3] float32 (changed in place): gain and colour cast,
    gamma, then resolution loss, blur and sensor noise."""
    h, w = img.shape[:2]
    img *= np.asarray(camera["cast"], np.float32) * np.float32(camera["gain"] * rng.uniform(0.93, 1.07))
    img = np.clip(img, 0, 1) ** np.float32(camera["gamma"])
    image = Image.fromarray((img * 255 + 0.5).astype(np.uint8))
    if camera["lowres"] < 0.97:
        small = (max(4, round(w * camera["lowres"])), max(8, round(h * camera["lowres"])))
        image = image.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)
    image = image.filter(ImageFilter.GaussianBlur(camera["blur"] * rng.uniform(0.8, 1.2) * h / 128))
    noisy = np.asarray(image, np.float32) + rng.standard_normal((h, w, 3), np.float32) * (camera["noise"] * 255)
    return Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))
