"""Background scenes: one per camera, wider and taller than a crop, so crops of it vary.

Style A draws a campus (facades with windows, bushes, paved ground), style B a mall interior
(warm walls, pillars, shop signs, ceiling lights, tiled floor). A scene depends only on its
camera's `bg_seed` and the image size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from qaconv.data.synthetic.streams import stream
from qaconv.data.synthetic.styles import (
    CAMPUS_FLOORS,
    CAMPUS_PLANTS,
    CAMPUS_WALLS,
    CAMPUS_WINDOWS,
    INDOOR_FLOORS,
    INDOOR_SIGNS,
    INDOOR_WALLS,
    STYLE_TABLE,
    palette_colour,
)


@dataclass(frozen=True)
class _Grid:
    """Pixel coordinates of a scene of hb x wb pixels for crops of height x width."""

    height: int
    width: int
    hb: int
    wb: int
    y: np.ndarray  # [hb, 1] in (0, 1), pixel centres
    x: np.ndarray  # [1, wb] in pixels
    yp: np.ndarray  # [hb, 1] in pixels
    horizon: float  # in (0, 1) of hb
    upper: np.ndarray  # [hb, wb] above the horizon

    @classmethod
    def create(cls, height: int, width: int, horizon: float) -> _Grid:
        hb, wb = height + height // 4, 3 * width
        y = (np.arange(hb, dtype=np.float32)[:, None] + 0.5) / hb
        upper = np.broadcast_to(y < horizon, (hb, wb))
        x, yp = np.arange(wb, dtype=np.float32)[None, :], np.arange(hb, dtype=np.float32)[:, None]
        return cls(height, width, hb, wb, y, x, yp, horizon, upper)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Low-frequency texture in about [-1, 1]."""
    small = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    image = Image.fromarray(small).resize((w, h), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32)


def _campus(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    """Facades with windows and maybe bushes above the horizon, paving stones below."""
    x, yp, y, horizon = g.x, g.yp, g.y, g.horizon
    wall = np.asarray(palette_colour(rng, CAMPUS_WALLS))
    window = np.asarray(palette_colour(rng, CAMPUS_WINDOWS))
    floor = np.asarray(palette_colour(rng, CAMPUS_FLOORS))
    img = np.empty((g.hb, g.wb, 3), np.float32)
    img[:] = wall * (1.08 - 0.2 * y)[..., None]
    px, py = rng.uniform(0.25, 0.45) * g.width, rng.uniform(0.1, 0.2) * g.height
    win = ((x % px) < px * rng.uniform(0.4, 0.7)) & ((yp % py) < py * rng.uniform(0.4, 0.7)) & g.upper
    win &= y < horizon - 0.05
    img[win] = window
    if rng.random() < 0.7:  # bushes and trees along the horizon
        for _ in range(int(rng.integers(3, 9))):
            cx, cy = rng.uniform(0, g.wb), g.hb * (horizon - rng.uniform(0, 0.12))
            rx, ry = rng.uniform(0.1, 0.3) * g.width, rng.uniform(0.05, 0.15) * g.height
            blob = ((x - cx) / rx) ** 2 + ((yp - cy) / ry) ** 2 <= 1
            img[blob] = np.asarray(palette_colour(rng, CAMPUS_PLANTS))
    tile = rng.uniform(0.15, 0.3) * g.width
    depth = np.maximum(y - horizon, 1e-3)
    floor_img = floor * (0.85 + 0.3 * depth)[..., None]
    lines = ((x + (yp - horizon * g.hb) * rng.uniform(-0.5, 0.5)) % tile < 1.2) | ((1 / depth) % 2 < 0.25)
    floor_img = np.where(lines[..., None], floor_img * 0.8, floor_img)
    return np.where(g.upper[..., None], img, floor_img)


def _indoor(rng: np.random.Generator, g: _Grid) -> np.ndarray:
    """A wall with pillars, shop signs and ceiling lights above the horizon, a tiled floor below."""
    x, yp, y, horizon, width = g.x, g.yp, g.y, g.horizon, g.width
    wall = np.asarray(palette_colour(rng, INDOOR_WALLS))
    floor = np.asarray(palette_colour(rng, INDOOR_FLOORS))
    img = np.empty((g.hb, g.wb, 3), np.float32)
    img[:] = wall * (0.9 + 0.15 * y)[..., None]
    for _ in range(int(rng.integers(1, 4))):  # pillars
        cx, half = rng.uniform(0, g.wb), rng.uniform(0.08, 0.2) * width
        pillar = (np.abs(x - cx) < half) & g.upper
        img[pillar] = np.asarray(wall) * rng.uniform(0.6, 1.3)
    for _ in range(int(rng.integers(2, 6))):  # shop signs
        cx, cy = rng.uniform(0, g.wb), rng.uniform(0.05, horizon * 0.6) * g.hb
        sign = (np.abs(x - cx) < rng.uniform(0.15, 0.5) * width) & (np.abs(yp - cy) < rng.uniform(0.03, 0.08) * g.hb)
        img[sign] = np.asarray(palette_colour(rng, INDOOR_SIGNS))
    for _ in range(int(rng.integers(1, 4))):  # ceiling lights
        cx, cy = rng.uniform(0, g.wb), rng.uniform(0, 0.15) * g.hb
        img += (0.35 * np.exp(-((x - cx) ** 2 + (yp - cy) ** 2) / (2 * (0.15 * width) ** 2)))[..., None]
    tile = rng.uniform(0.2, 0.4) * width
    depth = np.maximum(y - horizon, 1e-3)
    checker = (((x // tile) + ((1 / depth) // 1.5)) % 2).astype(np.float32)
    floor_img = floor * (1.15 - 0.4 * depth + 0.06 * checker)[..., None]
    return np.where(g.upper[..., None], img, floor_img)


def background(style: str, camera: dict[str, Any], height: int, width: int) -> np.ndarray:
    """A camera's scene, wider and taller than one crop: [H + H/4, 3W, 3] float32 in [0, 1]."""
    rng = stream(camera["bg_seed"])
    grid = _Grid.create(height, width, float(rng.uniform(0.42, 0.62)))
    draw = _campus if STYLE_TABLE[style].background == "campus" else _indoor
    img = draw(rng, grid)
    img *= (1 + 0.06 * _smooth_noise(rng, grid.hb, grid.wb, max(2, width // 8)))[..., None]
    return np.clip(img, 0, 1)
