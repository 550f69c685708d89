"""One image: a crop of the camera's scene, the person placed in it, maybe an occluder, the camera's effects.

Every image draws from its own stream, keyed by the image's key in the plan, so its pixels depend
only on (seed, style, size, cameras, key) and not on which process renders it or in what order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from qaconv.data.synthetic.cameras import photograph
from qaconv.data.synthetic.drawing import draw_person
from qaconv.data.synthetic.identities import sample_identity
from qaconv.data.synthetic.streams import KIND_JUNK, STYLE_CODE, T_EXTRA, stream
from qaconv.data.synthetic.styles import SKIN, STYLE_TABLE


@dataclass(frozen=True)
class RenderJob:
    """What every image of one data set shares: seed, style, crop size and the cameras."""

    seed: int
    style: str
    height: int
    width: int
    cameras: tuple[dict[str, Any], ...]


def _draw_occluder(img: np.ndarray, rng: np.random.Generator, style: str, camera: dict[str, Any]) -> None:
    """Something in front of the person: a bench or railing at the bottom, a pole, or part of a passer-by."""
    h, w = img.shape[:2]
    kinds = STYLE_TABLE[style].occluders
    kind = camera["occluder"] if rng.random() < 0.7 else kinds[int(rng.integers(len(kinds)))]
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    colour = np.asarray(camera["occ_colour"], np.float32) * rng.uniform(0.85, 1.15)
    if kind == "bottom":  # bench, railing, car bonnet
        y0 = h * rng.uniform(0.65, 0.88)
        x0, x1 = sorted(rng.uniform(-0.3, 1.3, 2) * w)
        mask = (yy >= y0) & (xx >= min(x0, 0.3 * w)) & (xx <= max(x1, 0.7 * w))
        rails = (yy - y0) % max(2.0, h * 0.05) < 1.0
        img[np.broadcast_to(mask, (h, w))] = colour
        img[np.broadcast_to(mask & rails, (h, w))] *= 0.7
    elif kind == "pole":
        half = w * rng.uniform(0.04, 0.1)
        cx = w * (rng.uniform(0.05, 0.35) if rng.random() < 0.5 else rng.uniform(0.65, 0.95))
        mask = np.broadcast_to((np.abs(xx - cx) <= half) & (yy >= 0), (h, w))
        img[mask] = colour
        img[mask] *= np.broadcast_to(1.15 - 0.3 * np.abs(xx - cx) / half, (h, w))[mask][:, None]
    else:  # part of another pedestrian passing in front
        palette = STYLE_TABLE[style].clothes
        cx = w * (rng.uniform(-0.15, 0.2) if rng.random() < 0.5 else rng.uniform(0.8, 1.15))
        body = ((xx - cx) / (w * rng.uniform(0.22, 0.32))) ** 2 + ((yy - h * 0.62) / (h * 0.42)) ** 2 <= 1
        head = ((xx - cx) / (w * 0.12)) ** 2 + ((yy - h * 0.14) / (h * 0.07)) ** 2 <= 1
        img[np.broadcast_to(body, (h, w))] = palette[int(rng.integers(len(palette)))]
        img[np.broadcast_to(head & ~body, (h, w))] = SKIN[int(rng.integers(len(SKIN)))]


def _place_person(
    img: np.ndarray,
    job: RenderJob,
    camera: dict[str, Any],
    ident: dict[str, Any],
    rng: np.random.Generator,
    misaligned: bool,
) -> None:
    """Draw `ident` in the crop at the camera's framing (scale, shift) with a random pose."""
    h, w = img.shape[:2]
    st = STYLE_TABLE[job.style]
    scale = float(np.clip(camera["scale"] + rng.normal(0, st.scale_jitter), 0.55, 0.98))
    shift = rng.normal(0, st.shift)
    if misaligned:  # a bad detection: the person is cut by the crop
        scale *= rng.uniform(0.9, 1.6)
        shift = rng.choice([-1, 1]) * rng.uniform(0.25, 0.5)
    ph = scale * h
    top = (h - ph) * rng.uniform(0.25, 0.75) - (rng.uniform(0, 0.3) * ph if misaligned else 0.0)
    cx = w / 2 + shift * w
    v = ((np.arange(h, dtype=np.float32) + 0.5 - top) / ph)[:, None]
    u = ((np.arange(w, dtype=np.float32) + 0.5 - cx) / ph)[None, :]
    view = ("front", "back", "side")[int(rng.choice(3, p=camera["views"]))]
    facing = 1 if rng.random() < 0.5 else -1
    draw_person(img, ident, u, v, view, facing, float(rng.uniform(0, 2 * math.pi)))


def render(
    job: RenderJob,
    cam: int,
    background: np.ndarray,
    ident: dict[str, Any] | None,
    rng: np.random.Generator,
    misaligned: bool = False,
) -> Image.Image:
    """One crop of camera `cam` (0-based; `background` is its scene) showing `ident` (None: background only)."""
    h, w = job.height, job.width
    camera = job.cameras[cam]
    oy = int(rng.integers(0, background.shape[0] - h + 1))
    ox = int(rng.integers(0, background.shape[1] - w + 1))
    img = background[oy : oy + h, ox : ox + w]
    img = (img[:, ::-1] if rng.random() < 0.5 else img) * np.float32(rng.uniform(0.95, 1.05))
    if ident is not None:
        _place_person(img, job, camera, ident, rng, misaligned)
    if rng.random() < camera["occlusion"]:
        _draw_occluder(img, rng, job.style, camera)
    return photograph(img, camera, rng)


def render_image(
    job: RenderJob,
    background: np.ndarray,
    cam: int,
    key: tuple[int, ...],
    ident: dict[str, Any] | None,
    misaligned: bool = False,
) -> Image.Image:
    """The image with plan key `key`: of identity `ident`, or for an extra image (key (T_EXTRA, kind, j)) a
    stranger drawn from its own stream: a distractor, or as junk clutter or a sliver of somebody."""
    rng = stream(job.seed, STYLE_CODE[job.style], *key)
    who = ident
    if key[0] == T_EXTRA and key[1] == KIND_JUNK:
        who = sample_identity(rng, job.style) if rng.random() < 0.5 else None
    elif key[0] == T_EXTRA:  # distractor: a person outside the id set, often badly framed
        who = sample_identity(rng, job.style)
    return render(job, cam, background, who, rng, misaligned)
