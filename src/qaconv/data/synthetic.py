"""Synthetic multi-camera pedestrian data set, written in the exact Market-1501 layout.

`generate(out_dir, ...)` draws identities (body shape, skin, hair, clothing colours and
patterns, bags, hats) and cameras (background, illumination, colour cast, blur, resolution,
noise, framing, typical viewpoint and occluders), then renders every image with NumPy on a
small canvas and writes JPEGs named like Market-1501's:

    <out_dir>/bounding_box_train/0002_c1s1_000151_01.jpg
    <out_dir>/bounding_box_test/0000_c3s1_004502_02.jpg   (distractor, pid 0)
    <out_dir>/bounding_box_test/-1_c5s1_000822_01.jpg     (junk, pid -1)
    <out_dir>/query/0007_c2s1_019327_01.jpg
    <out_dir>/meta.json

A person looks the same in every camera apart from the camera's effects and the pose
(viewpoint, walking phase, framing), so the set is learnable; identities come in
"families" that share everything but one attribute, so hard negatives exist. Two styles
(domains, 'A' and 'B') differ in palettes, backgrounds and cameras: train on one, test on
the other. Every image's pixels depend only on (seed, style, size, identity or extra index,
image index), so a seed gives the same bytes whatever the number of worker processes.
docs/synthetic.md describes the drawing and the options.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from qaconv.errors import QAConvError

GENERATOR_VERSION = "1.0"
STYLES = ("A", "B")
SPLIT_DIRS = ("bounding_box_train", "bounding_box_test", "query")
FPS = 25  # Market-1501 frame rate: time = frame / 25 s

_STYLE_CODE = {"A": 1, "B": 2}
# Tags of the independent random streams (SeedSequence([seed, style, tag, ...])).
_T_CAMERA, _T_FAMILY, _T_SPLIT, _T_TRACK, _T_IMAGE, _T_EXTRA = range(6)
_KIND_ID, _KIND_DISTRACTOR, _KIND_JUNK = 0, 1, 2
_MAX_FRAME = 999_999  # six digits in the file name


def _c(*rgb: tuple[int, int, int]) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float32) / 255.0


# --------------------------------------------------------------------------------------------
# The two styles (domains)
# --------------------------------------------------------------------------------------------

_SKIN = _c((255, 220, 177), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 60, 40))

_STYLE_TABLE: dict[str, dict[str, Any]] = {
    # A: "campus in daylight" (Market-like): saturated primaries, facades, pavement, mild cameras.
    "A": {
        "clothes": _c(
            (28, 28, 32),
            (232, 232, 228),
            (128, 128, 132),
            (72, 72, 78),
            (30, 42, 92),
            (40, 92, 192),
            (142, 182, 222),
            (192, 36, 36),
            (40, 132, 62),
            (232, 202, 42),
            (236, 122, 30),
            (232, 142, 172),
            (112, 52, 142),
            (202, 182, 142),
            (112, 72, 40),
            (62, 82, 122),
        ),
        "skin_p": [0.25, 0.25, 0.2, 0.15, 0.1, 0.05],
        "hair": _c((20, 18, 16), (58, 38, 24), (110, 72, 40), (200, 170, 110), (150, 150, 150), (130, 50, 20)),
        "hair_p": [0.45, 0.25, 0.12, 0.08, 0.06, 0.04],
        "pattern_p": {"plain": 0.45, "hstripes": 0.15, "vstripes": 0.07, "checks": 0.1, "logo": 0.18, "twotone": 0.05},
        "lower_p": {"trousers": 0.65, "shorts": 0.2, "skirt": 0.15},
        "bag_p": {"none": 0.4, "backpack": 0.3, "shoulder": 0.15, "handbag": 0.15},
        "hat_p": 0.1,
        "background": "campus",
        "gain": (0.9, 1.12),
        "cast": 0.06,
        "cast_bias": (-0.02, 0.0, 0.03),
        "gamma": (0.9, 1.1),
        "blur": (0.35, 0.8),
        "lowres": (0.8, 1.0),
        "noise": (0.004, 0.014),
        "scale": (0.82, 0.92),
        "scale_jitter": 0.03,
        "shift": 0.04,
        "occlusion": (0.05, 0.2),
        "occluders": ("bottom", "pole", "person"),
    },
    # B: "shopping mall in the evening": muted/earthy palette, warm interiors, darker, colour-cast,
    # blurrier, lower-resolution cameras that frame people less tightly and occlude them more.
    "B": {
        "clothes": _c(
            (112, 22, 42),
            (202, 162, 42),
            (22, 122, 122),
            (112, 112, 42),
            (240, 112, 92),
            (172, 152, 212),
            (172, 162, 112),
            (52, 52, 58),
            (236, 226, 200),
            (32, 82, 52),
            (172, 82, 42),
            (112, 172, 232),
            (202, 42, 142),
            (192, 152, 102),
            (92, 102, 122),
            (140, 60, 90),
        ),
        "skin_p": [0.1, 0.15, 0.2, 0.2, 0.2, 0.15],
        "hair": _c((20, 18, 16), (58, 38, 24), (110, 72, 40), (200, 170, 110), (150, 150, 150), (120, 40, 120)),
        "hair_p": [0.35, 0.25, 0.15, 0.1, 0.05, 0.1],
        "pattern_p": {"plain": 0.35, "hstripes": 0.1, "vstripes": 0.1, "checks": 0.2, "logo": 0.1, "twotone": 0.15},
        "lower_p": {"trousers": 0.55, "shorts": 0.15, "skirt": 0.3},
        "bag_p": {"none": 0.3, "backpack": 0.2, "shoulder": 0.25, "handbag": 0.25},
        "hat_p": 0.2,
        "background": "indoor",
        "gain": (0.55, 0.85),
        "cast": 0.12,
        "cast_bias": (0.1, 0.0, -0.1),
        "gamma": (0.8, 1.2),
        "blur": (0.6, 1.3),
        "lowres": (0.5, 0.8),
        "noise": (0.012, 0.035),
        "scale": (0.72, 0.88),
        "scale_jitter": 0.05,
        "shift": 0.07,
        "occlusion": (0.15, 0.35),
        "occluders": ("bottom", "person", "pole"),
    },
}

_HAIR_STYLES = ("short", "long", "ponytail", "bald")
_HAIR_STYLE_P = (0.5, 0.28, 0.14, 0.08)
_LOGOS = ("circle", "square", "diamond", "triangle")
_MUTABLE = ("upper_colour", "upper_pattern", "lower", "bag", "hair", "shoes", "sleeves", "hat")


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def _pick(rng: np.random.Generator, table: dict[str, float]) -> str:
    names = list(table)
    p = np.asarray([table[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


# --------------------------------------------------------------------------------------------
# Identities and families
# --------------------------------------------------------------------------------------------


def _palette_colour(rng: np.random.Generator, palette: np.ndarray, avoid: np.ndarray | None = None) -> list:
    """A palette colour with a small fixed per-identity tint (so palettes are shared, not identical)."""
    for _ in range(20):
        base = palette[int(rng.integers(len(palette)))]
        if avoid is None or np.abs(base - avoid).max() > 0.2:
            break
    return np.clip(base + rng.normal(0, 0.025, 3), 0, 1).astype(np.float32).tolist()


def _sample_attribute(rng: np.random.Generator, st: dict[str, Any], p: dict[str, Any], name: str) -> None:
    clothes = st["clothes"]
    if name == "upper_colour":
        p["upper1"] = _palette_colour(rng, clothes)
        p["upper2"] = _palette_colour(rng, clothes, avoid=np.asarray(p["upper1"]))
    elif name == "upper_pattern":
        p["pattern"] = _pick(rng, st["pattern_p"])
        p["period"] = float(rng.uniform(0.035, 0.065))
        p["logo"] = _LOGOS[int(rng.integers(len(_LOGOS)))]
    elif name == "lower":
        p["lower"] = _palette_colour(rng, clothes)
        p["lower_kind"] = _pick(rng, st["lower_p"])
        p["tights"] = bool(rng.random() < 0.4)
    elif name == "bag":
        p["bag"] = _pick(rng, st["bag_p"])
        p["bag_colour"] = _palette_colour(rng, clothes)
    elif name == "hair":
        p["hair_style"] = _HAIR_STYLES[int(rng.choice(4, p=_HAIR_STYLE_P))]
        p["hair"] = (
            (st["hair"][int(rng.choice(len(st["hair"]), p=st["hair_p"]))] + rng.normal(0, 0.02, 3)).clip(0, 1).tolist()
        )
    elif name == "shoes":
        p["shoes"] = _palette_colour(
            rng, _c((20, 20, 20), (235, 235, 235), (110, 70, 40), (60, 60, 70), (180, 40, 40), (40, 80, 160))
        )
    elif name == "sleeves":
        p["long_sleeves"] = bool(rng.random() < 0.5)
    elif name == "hat":
        p["hat"] = bool(rng.random() < st["hat_p"])
        p["hat_colour"] = _palette_colour(rng, clothes)


def _sample_identity(rng: np.random.Generator, style: str) -> dict[str, Any]:
    """All attributes of one person (plain floats, lists and strings, so it pickles cheaply)."""
    st = _STYLE_TABLE[style]
    build = float(rng.uniform(0.85, 1.2))  # slim .. heavy
    sh = float(rng.uniform(0.095, 0.125)) * build
    p: dict[str, Any] = {
        "head_r": float(rng.uniform(0.058, 0.07)),
        "torso": float(rng.uniform(0.29, 0.35)),
        "sh": sh,
        "hh": sh * float(rng.uniform(0.8, 0.98)),
        "arm": 0.026 * build,
        "skin": (_SKIN[int(rng.choice(len(_SKIN), p=st["skin_p"]))] + rng.normal(0, 0.02, 3)).clip(0, 1).tolist(),
    }
    for name in _MUTABLE:
        _sample_attribute(rng, st, p, name)
    return p


def _family(rng: np.random.Generator, style: str, size: int) -> list[dict[str, Any]]:
    """`size` near-twins: copies of one person that each differ from it in one attribute group."""
    base = _sample_identity(rng, style)
    members = [base]
    for _ in range(size - 1):
        twin = dict(base)
        group = _MUTABLE[int(rng.integers(len(_MUTABLE)))]
        for _ in range(10):  # re-draw until the attribute really changed
            _sample_attribute(rng, _STYLE_TABLE[style], twin, group)
            if any(twin[k] != base[k] for k in twin):
                break
        members.append(twin)
    return members


# --------------------------------------------------------------------------------------------
# Cameras and backgrounds
# --------------------------------------------------------------------------------------------


def _sample_camera(rng: np.random.Generator, style: str, index: int) -> dict[str, Any]:
    st = _STYLE_TABLE[style]
    cast = 1.0 + np.asarray(st["cast_bias"]) + rng.uniform(-st["cast"], st["cast"], 3)
    cast /= cast.mean()
    views = rng.dirichlet([2.0, 2.0, 1.5])  # front, back, side: each camera sees people from its own angles
    preferred = st["occluders"][int(rng.integers(len(st["occluders"])))]
    return {
        "index": index,
        "gain": float(rng.uniform(*st["gain"])),
        "cast": cast.astype(np.float32).tolist(),
        "gamma": float(rng.uniform(*st["gamma"])),
        "blur": float(rng.uniform(*st["blur"])),
        "lowres": float(rng.uniform(*st["lowres"])),
        "noise": float(rng.uniform(*st["noise"])),
        "scale": float(rng.uniform(*st["scale"])),
        "occlusion": float(rng.uniform(*st["occlusion"])),
        "occluder": preferred,
        "occ_colour": _palette_colour(
            rng, _c((90, 90, 95), (150, 150, 150), (120, 80, 50), (40, 60, 90), (170, 40, 40), (60, 100, 60))
        ),
        "views": views.tolist(),
        "position": float(rng.uniform(0, 400)),  # metres along the walkway, for plausible frame numbers
        "bg_seed": int(rng.integers(2**31)),
    }


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Low-frequency texture in about [-1, 1]."""
    small = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    image = Image.fromarray(small).resize((w, h), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32)


def _background(style: str, camera: dict[str, Any], height: int, width: int) -> np.ndarray:
    """A camera's scene, wider and taller than one crop: [H + H/4, 3W, 3] float32 in [0, 1]."""
    rng = _rng(camera["bg_seed"])
    hb, wb = height + height // 4, 3 * width
    y = (np.arange(hb, dtype=np.float32)[:, None] + 0.5) / hb
    x = np.arange(wb, dtype=np.float32)[None, :]
    yp = np.arange(hb, dtype=np.float32)[:, None]
    img = np.empty((hb, wb, 3), np.float32)
    horizon = float(rng.uniform(0.42, 0.62))
    upper = np.broadcast_to(y < horizon, (hb, wb))
    if _STYLE_TABLE[style]["background"] == "campus":
        wall = np.asarray(
            _palette_colour(rng, _c((150, 150, 156), (186, 176, 160), (160, 92, 72), (205, 205, 198), (122, 132, 142)))
        )
        window = np.asarray(_palette_colour(rng, _c((60, 80, 112), (42, 50, 60), (122, 152, 172))))
        floor = np.asarray(_palette_colour(rng, _c((142, 142, 142), (166, 160, 150), (112, 112, 118), (152, 132, 112))))
        img[:] = wall * (1.08 - 0.2 * y)[..., None]
        px, py = rng.uniform(0.25, 0.45) * width, rng.uniform(0.1, 0.2) * height
        win = ((x % px) < px * rng.uniform(0.4, 0.7)) & ((yp % py) < py * rng.uniform(0.4, 0.7)) & upper
        win &= y < horizon - 0.05
        img[win] = window
        if rng.random() < 0.7:  # bushes and trees along the horizon
            for _ in range(int(rng.integers(3, 9))):
                cx, cy = rng.uniform(0, wb), hb * (horizon - rng.uniform(0, 0.12))
                rx, ry = rng.uniform(0.1, 0.3) * width, rng.uniform(0.05, 0.15) * height
                blob = ((x - cx) / rx) ** 2 + ((yp - cy) / ry) ** 2 <= 1
                img[blob] = np.asarray(_palette_colour(rng, _c((40, 100, 40), (70, 120, 50), (30, 80, 50))))
        tile = rng.uniform(0.15, 0.3) * width
        depth = np.maximum(y - horizon, 1e-3)
        floor_img = floor * (0.85 + 0.3 * depth)[..., None]
        lines = ((x + (yp - horizon * hb) * rng.uniform(-0.5, 0.5)) % tile < 1.2) | ((1 / depth) % 2 < 0.25)
        floor_img = np.where(lines[..., None], floor_img * 0.8, floor_img)
        img = np.where(upper[..., None], img, floor_img)
    else:
        wall = np.asarray(
            _palette_colour(
                rng, _c((192, 150, 112), (212, 192, 162), (152, 112, 92), (122, 92, 72), (202, 172, 172), (92, 82, 92))
            )
        )
        floor = np.asarray(_palette_colour(rng, _c((92, 82, 72), (142, 122, 102), (62, 62, 72), (172, 162, 152))))
        img[:] = wall * (0.9 + 0.15 * y)[..., None]
        for _ in range(int(rng.integers(1, 4))):  # pillars
            cx, half = rng.uniform(0, wb), rng.uniform(0.08, 0.2) * width
            pillar = (np.abs(x - cx) < half) & upper
            img[pillar] = np.asarray(wall) * rng.uniform(0.6, 1.3)
        for _ in range(int(rng.integers(2, 6))):  # shop signs
            cx, cy = rng.uniform(0, wb), rng.uniform(0.05, horizon * 0.6) * hb
            sign = (np.abs(x - cx) < rng.uniform(0.15, 0.5) * width) & (np.abs(yp - cy) < rng.uniform(0.03, 0.08) * hb)
            img[sign] = np.asarray(
                _palette_colour(rng, _c((232, 62, 52), (252, 202, 42), (42, 162, 222), (242, 242, 242), (202, 62, 162)))
            )
        for _ in range(int(rng.integers(1, 4))):  # ceiling lights
            cx, cy = rng.uniform(0, wb), rng.uniform(0, 0.15) * hb
            img += (0.35 * np.exp(-((x - cx) ** 2 + (yp - cy) ** 2) / (2 * (0.15 * width) ** 2)))[..., None]
        tile = rng.uniform(0.2, 0.4) * width
        depth = np.maximum(y - horizon, 1e-3)
        checker = (((x // tile) + ((1 / depth) // 1.5)) % 2).astype(np.float32)
        floor_img = floor * (1.15 - 0.4 * depth + 0.06 * checker)[..., None]
        img = np.where(upper[..., None], img, floor_img)
    img *= (1 + 0.06 * _smooth_noise(rng, hb, wb, max(2, width // 8)))[..., None]
    return np.clip(img, 0, 1)


# --------------------------------------------------------------------------------------------
# Drawing one person
# --------------------------------------------------------------------------------------------


def _pattern(p: dict[str, Any], u: np.ndarray, v: np.ndarray, vs: float, shape: tuple[int, int]) -> np.ndarray:
    """Upper-garment colour per pixel [H, W, 3] (plain, stripes, checks, logo or two-tone)."""
    c1, c2 = np.asarray(p["upper1"], np.float32), np.asarray(p["upper2"], np.float32)
    kind, period = p["pattern"], p["period"]
    if kind == "hstripes":
        second = (v / period) % 1 < 0.5
    elif kind == "vstripes":
        second = (u / period) % 1 < 0.5
    elif kind == "checks":
        second = ((v / (1.4 * period)) % 1 < 0.5) ^ ((u / (1.4 * period)) % 1 < 0.5)
    elif kind == "twotone":
        second = v > vs + 0.45 * p["torso"]
    else:
        return np.broadcast_to(c1, (*shape, 3))
    return np.where(np.broadcast_to(second, shape)[..., None], c2, c1)


def _draw_person(
    img: np.ndarray, p: dict[str, Any], u: np.ndarray, v: np.ndarray, view: str, facing: int, phase: float
) -> np.ndarray:
    """Paint a person on img in place; u [1, W] and v [H, 1] are in person heights (v 0 = top of head,
    1 = soles, u 0 = body axis). Returns the person's mask."""
    shape = img.shape[:2]
    person = np.zeros(shape, bool)

    def paint(mask: np.ndarray, colour: Any) -> None:
        mask = np.broadcast_to(mask, shape)
        colour = np.asarray(colour, np.float32)
        img[mask] = colour if colour.ndim == 1 else colour[mask]
        np.logical_or(person, mask, out=person)

    side = view == "side"
    back = view == "back"
    hr = p["head_r"]
    hw = hr * 0.82
    hcy = hr + 0.005
    vs = 2 * hr + 0.03
    vh = vs + p["torso"]
    ankle = 0.965
    wf = 0.55 if side else 1.0
    sh, hh = p["sh"] * wf, p["hh"] * wf
    skin, hair = p["skin"], p["hair"]
    upper = _pattern(p, u, v, vs, shape)
    leg_len = ankle - vh

    # Ground shadow.
    shadow = np.broadcast_to(((u / (1.6 * p["sh"])) ** 2 + ((v - 1.0) / 0.025) ** 2) <= 1, shape)
    img[shadow] *= 0.7

    # Hair behind the shoulders (front view) and the backpack behind the body (side view).
    if p["hair_style"] == "long" and not back:
        paint((np.abs(u + (0.25 * hw * facing if side else 0)) <= hw * 1.12) & (v >= hcy) & (v <= vs + 0.1), hair)
    if side and p["bag"] == "backpack":
        paint(
            (u * facing <= -sh + 0.01) & (u * facing >= -sh - 0.075) & (v >= vs + 0.02) & (v <= vs + 0.65 * p["torso"]),
            p["bag_colour"],
        )

    # Legs and shoes.
    if side:
        centres, swings = (0.0, 0.0), (0.35 * math.sin(phase), -0.35 * math.sin(phase))
    else:
        legw0 = 0.46 * hh
        centres, swings = (-(hh - legw0), hh - legw0), (0.04 * math.sin(phase), -0.04 * math.sin(phase))
    legw = 0.46 * p["hh"] * (0.8 if side else 1.0)
    knee = vh + 0.45 * leg_len
    kind = p["lower_kind"]
    bare = np.asarray(p["lower"]) * 0.35 if p["tights"] and kind == "skirt" else skin
    for c, s in zip(centres, swings, strict=True):
        axis = u - c - s * np.clip(v - vh, 0, None)
        taper = legw * (1 - 0.25 * np.clip((v - vh) / leg_len, 0, 1))
        leg = (np.abs(axis) <= taper) & (v >= vh - 0.01) & (v <= ankle)
        if kind == "trousers":
            paint(leg, p["lower"])
        else:
            paint(leg & (v < knee), p["lower"] if kind == "shorts" else bare)
            paint(leg & (v >= knee), bare)
        toe = 0.025 * facing if side else 0.0
        paint((np.abs(axis - toe) <= legw * 0.8 + 0.012) & (v > ankle - 0.005) & (v <= 1.0), p["shoes"])
    if kind == "skirt":
        depth = np.clip((v - vh) / (0.5 * leg_len), 0, 1)
        paint((np.abs(u) <= hh * (1.05 + 0.5 * depth)) & (v >= vh - 0.01) & (v <= vh + 0.5 * leg_len), p["lower"])

    # Arms (before the torso in front/back views, after it in the side view).
    arm_len = p["torso"] + 0.06
    sleeve_end = vs + (arm_len - 0.045 if p["long_sleeves"] else 0.35 * arm_len)

    def arms() -> None:
        xs = [(0.0, -0.3 * math.sin(phase))] if side else [(-(sh + p["arm"] * 0.6), -0.06), (sh + p["arm"] * 0.6, 0.06)]
        for x0, slope in xs:
            axis = u - x0 - slope * np.clip(v - vs, 0, None)
            arm = (np.abs(axis) <= p["arm"]) & (v >= vs + 0.004) & (v <= vs + arm_len)
            paint(arm & (v < sleeve_end), upper)
            paint(arm & (v >= sleeve_end), skin)

    if not side:
        arms()
    # Torso.
    t = np.clip((v - vs) / (vh - vs), 0, 1)
    width = sh + (hh - sh) * t - 0.03 * np.clip(1 - (v - vs) / 0.03, 0, 1) ** 2
    torso = (np.abs(u) <= width) & (v >= vs) & (v <= vh + 0.02)
    paint(torso, upper)
    if p["pattern"] == "logo" and view == "front":
        lu, lv, r = u, v - (vs + 0.3 * p["torso"]), 0.045 * wf
        logo = {
            "circle": lu**2 + lv**2 <= r**2,
            "square": (np.abs(lu) <= 0.8 * r) & (np.abs(lv) <= 0.8 * r),
            "diamond": np.abs(lu) + np.abs(lv) <= r,
            "triangle": (lv <= 0.7 * r) & (lv >= -r + 2 * np.abs(lu)),
        }[p["logo"]]
        paint(logo, p["upper2"])
    if side:
        arms()
    # Neck, head, hair and hat.
    paint((np.abs(u) <= hw * 0.45) & (v >= 2 * hr - 0.01) & (v <= vs + 0.005), skin)
    hu = u - (0.01 * facing if side else 0.0)
    head = (hu / hw) ** 2 + ((v - hcy) / hr) ** 2 <= 1
    paint(head, skin)
    cap = (hu / (1.08 * hw)) ** 2 + ((v - hcy) / (1.06 * hr)) ** 2 <= 1
    style = p["hair_style"]
    if style != "bald":
        if back:
            covered = cap & (v <= hcy + 0.8 * hr)
        elif side:
            covered = cap & ((v <= hcy - 0.3 * hr) | (hu * facing < -0.2 * hw))
        else:
            covered = cap & (v <= hcy - 0.35 * hr)
        paint(covered, hair)
        if style == "long" and back:
            paint((np.abs(u) <= hw * 1.15) & (v >= hcy) & (v <= vs + 0.1), hair)
        if style == "ponytail" and view != "front":
            tail_u = u + (hw * 0.9 * facing if side else 0.0)
            paint((np.abs(tail_u) <= 0.018) & (v >= hcy - 0.2 * hr) & (v <= vs + 0.08), hair)
    if p["hat"]:
        paint(cap & (v <= hcy - 0.2 * hr), p["hat_colour"])
        if not back:
            brim_u = hu - (0.7 * hw * facing if side else 0.0)
            paint(
                (np.abs(brim_u) <= hw * (0.8 if side else 1.15)) & (np.abs(v - (hcy - 0.25 * hr)) <= 0.05 * hr),
                p["hat_colour"],
            )

    # Bags.
    bag, bag_colour = p["bag"], p["bag_colour"]
    if bag == "backpack" and back:
        paint((np.abs(u) <= sh * 0.75) & (v >= vs + 0.02) & (v <= vs + 0.65 * p["torso"]), bag_colour)
        paint(
            (np.abs(u) <= sh * 0.5) & (v >= vs + 0.45 * p["torso"]) & (v <= vs + 0.6 * p["torso"]),
            np.asarray(bag_colour) * 0.7,
        )
    elif bag == "backpack" and not side:
        paint((np.abs(np.abs(u) - sh * 0.55) <= 0.012) & (v >= vs) & (v <= vs + 0.55 * p["torso"]), bag_colour)
    elif bag == "shoulder":
        d = -1.0 if back else 1.0
        if side:
            strap = np.abs(u - facing * 0.01) <= 0.01
            box_u = u - facing * 0.01
        else:
            x0, x1 = sh * 0.6 * d, -hh * 1.05 * d
            strap = np.abs(u - (x0 + (x1 - x0) * np.clip((v - vs) / (vh - 0.03 - vs), 0, 1))) <= 0.01
            box_u = u + d * (hh + 0.03)
        paint(strap & (v >= vs - 0.005) & (v <= vh - 0.03), bag_colour)
        paint((np.abs(box_u) <= 0.045) & (v >= vh - 0.08) & (v <= vh + 0.04), bag_colour)
    elif bag == "handbag":
        hand_u = u - (-0.3 * math.sin(phase) * arm_len if side else (sh + p["arm"] * 0.6 + 0.06 * arm_len))
        paint((np.abs(hand_u) <= 0.035) & (v >= vs + arm_len - 0.01) & (v <= vs + arm_len + 0.09), bag_colour)

    # Round the body with a little horizontal shading.
    shade = np.broadcast_to(1.0 - 0.22 * np.clip((u / (1.3 * p["sh"])) ** 2, 0, 1), shape)
    img[person] *= shade[person][:, None]
    return person


# --------------------------------------------------------------------------------------------
# One image: scene, person, occluder, camera effects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    out_dir: str
    seed: int
    style: str
    height: int
    width: int
    quality: int
    cameras: tuple[dict[str, Any], ...]


_BACKGROUNDS: dict[tuple, np.ndarray] = {}


def _camera_background(job: _Job, cam: int) -> np.ndarray:
    key = (job.seed, job.style, cam, job.height, job.width)
    if key not in _BACKGROUNDS:
        _BACKGROUNDS[key] = _background(job.style, job.cameras[cam], job.height, job.width)
    return _BACKGROUNDS[key]


def _draw_occluder(img: np.ndarray, rng: np.random.Generator, job: _Job, camera: dict[str, Any]) -> None:
    h, w = img.shape[:2]
    kinds = _STYLE_TABLE[job.style]["occluders"]
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
        palette = _STYLE_TABLE[job.style]["clothes"]
        cx = w * (rng.uniform(-0.15, 0.2) if rng.random() < 0.5 else rng.uniform(0.8, 1.15))
        body = ((xx - cx) / (w * rng.uniform(0.22, 0.32))) ** 2 + ((yy - h * 0.62) / (h * 0.42)) ** 2 <= 1
        head = ((xx - cx) / (w * 0.12)) ** 2 + ((yy - h * 0.14) / (h * 0.07)) ** 2 <= 1
        img[np.broadcast_to(body, (h, w))] = palette[int(rng.integers(len(palette)))]
        img[np.broadcast_to(head & ~body, (h, w))] = _SKIN[int(rng.integers(len(_SKIN)))]


def _render(
    job: _Job, cam: int, ident: dict[str, Any] | None, rng: np.random.Generator, misaligned: bool = False
) -> Image.Image:
    """One crop of camera `cam` (0-based) showing `ident` (None: background only)."""
    h, w = job.height, job.width
    camera = job.cameras[cam]
    bg = _camera_background(job, cam)
    oy = int(rng.integers(0, bg.shape[0] - h + 1))
    ox = int(rng.integers(0, bg.shape[1] - w + 1))
    img = bg[oy : oy + h, ox : ox + w]
    img = (img[:, ::-1] if rng.random() < 0.5 else img) * np.float32(rng.uniform(0.95, 1.05))
    if ident is not None:
        st = _STYLE_TABLE[job.style]
        scale = float(np.clip(camera["scale"] + rng.normal(0, st["scale_jitter"]), 0.55, 0.98))
        shift = rng.normal(0, st["shift"])
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
        _draw_person(img, ident, u, v, view, facing, float(rng.uniform(0, 2 * math.pi)))
    if rng.random() < camera["occlusion"]:
        _draw_occluder(img, rng, job, camera)
    # Camera photometry: gain and colour cast, gamma, then resolution, blur and sensor noise.
    img *= np.asarray(camera["cast"], np.float32) * np.float32(camera["gain"] * rng.uniform(0.93, 1.07))
    img = np.clip(img, 0, 1) ** np.float32(camera["gamma"])
    image = Image.fromarray((img * 255 + 0.5).astype(np.uint8))
    if camera["lowres"] < 0.97:
        small = (max(4, round(w * camera["lowres"])), max(8, round(h * camera["lowres"])))
        image = image.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)
    image = image.filter(ImageFilter.GaussianBlur(camera["blur"] * rng.uniform(0.8, 1.2) * h / 128))
    noisy = np.asarray(image, np.float32) + rng.standard_normal((h, w, 3), np.float32) * (camera["noise"] * 255)
    return Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))


_JOB: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _JOB
    _JOB = job


def _render_task(task: tuple[dict[str, Any] | None, list[tuple]]) -> int:
    """Render and write the images of one identity (or one extra image)."""
    job = _JOB
    ident, images = task
    for subdir, name, cam, key, misaligned in images:
        rng = _rng(job.seed, _STYLE_CODE[job.style], *key)
        who = ident
        if key[0] == _T_EXTRA and key[1] == _KIND_JUNK:  # junk: clutter, or a sliver of somebody
            who = _sample_identity(rng, job.style) if rng.random() < 0.5 else None
        elif key[0] == _T_EXTRA:  # distractor: a person outside the id set, often badly framed
            who = _sample_identity(rng, job.style)
        image = _render(job, cam, who, rng, misaligned)
        image.save(os.path.join(job.out_dir, subdir, name), format="JPEG", quality=job.quality)
    return len(images)


# --------------------------------------------------------------------------------------------
# The plan: identities, splits, cameras, frames and file names
# --------------------------------------------------------------------------------------------


def _market_name(pid: int, cam: int, frame: int, index: int) -> str:
    """Market-1501 file name; cam is 0-based here and 1-based in the name, session is always 1."""
    pid_text = "-1" if pid < 0 else f"{pid:04d}"
    return f"{pid_text}_c{cam + 1}s1_{frame:06d}_{index:02d}.jpg"


def _split_families(rng: np.random.Generator, families: list[list[int]], num_train: int) -> set[int]:
    """Train pids: whole families (so twins stay together) until exactly num_train ids."""
    train: set[int] = set()
    order = rng.permutation(len(families))
    for i in order:
        if len(train) + len(families[i]) <= num_train:
            train.update(families[i])
    for i in order:  # top up by splitting a family only when whole ones cannot fill the quota
        for pid in families[i]:
            if len(train) < num_train:
                train.add(pid)
    return train


def _plan(
    num_ids: int,
    num_cams: int,
    seed: int,
    style: str,
    images_per_id: int,
    junk_fraction: float,
    distractor_fraction: float,
) -> dict[str, Any]:
    code = _STYLE_CODE[style]
    cam_rng = _rng(seed, code, _T_CAMERA)
    cameras = tuple(_sample_camera(cam_rng, style, c) for c in range(num_cams))

    fam_rng = _rng(seed, code, _T_FAMILY)
    identities: dict[int, dict[str, Any]] = {}
    families: list[list[int]] = []
    while len(identities) < num_ids:
        size = min(int(fam_rng.choice([1, 2, 3, 4], p=[0.4, 0.3, 0.2, 0.1])), num_ids - len(identities))
        members = []
        for ident in _family(fam_rng, style, size):
            pid = len(identities) + 1
            identities[pid] = ident
            members.append(pid)
        families.append(members)
    train = _split_families(_rng(seed, code, _T_SPLIT), families, num_ids // 2)

    session_s = min(_MAX_FRAME / FPS - 600, max(1800.0, 20.0 * num_ids))
    shots: list[dict[str, Any]] = []  # one per image: pid, cam, frame, split, key
    for pid in range(1, num_ids + 1):
        rng = _rng(seed, code, _T_TRACK, pid)
        n = max(4, round(images_per_id * rng.uniform(0.6, 1.4)))
        k = int(rng.integers(2, min(num_cams, n // 2) + 1))
        cams = [int(c) for c in rng.choice(num_cams, k, replace=False)]
        counts = 2 + rng.multinomial(n - 2 * k, rng.dirichlet(np.ones(k)))
        # Walk past the cameras in order of position, at walking speed; a short tracklet in each.
        order = np.argsort([cameras[c]["position"] for c in cams])
        if rng.random() < 0.5:
            order = order[::-1]
        t, speed, pos = rng.uniform(0, session_s), rng.uniform(1.0, 1.6), None
        per_cam: list[list[dict[str, Any]]] = []
        for j in order:
            cam = cams[j]
            if pos is not None:
                t += abs(cameras[cam]["position"] - pos) / speed + rng.uniform(0, 5)
            pos = cameras[cam]["position"]
            frame = int(t * FPS)
            mine = []
            for _ in range(int(counts[j])):
                mine.append({"pid": pid, "cam": cam, "frame": min(frame, _MAX_FRAME)})
                frame += int(rng.integers(4, 30))
            t = frame / FPS
            per_cam.append(mine)
        for mine in per_cam:
            query = int(rng.integers(len(mine))) if pid not in train else -1
            for i, shot in enumerate(mine):
                shot["split"] = (
                    "bounding_box_train" if pid in train else ("query" if i == query else "bounding_box_test")
                )
        for i, shot in enumerate(s for mine in per_cam for s in mine):
            shot["key"] = (_T_IMAGE, pid, i)
            shots.append(shot)

    gallery = sum(s["split"] == "bounding_box_test" for s in shots)
    extra_rng = _rng(seed, code, _T_EXTRA)
    for kind, pid, fraction in ((_KIND_DISTRACTOR, 0, distractor_fraction), (_KIND_JUNK, -1, junk_fraction)):
        for j in range(round(gallery * fraction)):
            shots.append(
                {
                    "pid": pid,
                    "cam": int(extra_rng.integers(num_cams)),
                    "frame": int(extra_rng.integers(0, int(session_s * FPS))),
                    "split": "bounding_box_test",
                    "key": (_T_EXTRA, kind, j),
                    "misaligned": bool(extra_rng.random() < 0.6),
                }
            )

    # Market's last field numbers the detections of one frame of one camera: 01, 02, ...
    shots.sort(key=lambda s: (s["cam"], s["frame"], s["pid"], s["key"]))
    seen: dict[tuple[int, int], int] = {}
    for s in shots:
        index = seen.get((s["cam"], s["frame"]), 0) + 1
        seen[(s["cam"], s["frame"])] = index
        s["name"] = _market_name(s["pid"], s["cam"], s["frame"], min(index, 99))
    return {"cameras": cameras, "identities": identities, "families": families, "train": train, "shots": shots}


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def _check(
    num_ids: int,
    num_cams: int,
    images_per_id: int,
    height: int,
    width: int,
    style: str,
    quality: int,
    junk_fraction: float,
    distractor_fraction: float,
) -> None:
    if style not in STYLES:
        raise QAConvError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    if not 2 <= num_ids <= 9999:
        raise QAConvError(f"num_ids must be in 2..9999 (4-digit Market pids), got {num_ids}")
    if not 2 <= num_cams <= 9:
        raise QAConvError(f"num_cams must be in 2..9 (one digit in Market file names), got {num_cams}")
    if images_per_id < 4:
        raise QAConvError(f"images_per_id must be at least 4 (2 cameras x 2 images), got {images_per_id}")
    if height < 32 or width < 16:
        raise QAConvError(f"image size must be at least 32x16 (height x width), got {height}x{width}")
    if not 1 <= quality <= 100:
        raise QAConvError(f"JPEG quality must be in 1..100, got {quality}")
    for name, value in (("junk_fraction", junk_fraction), ("distractor_fraction", distractor_fraction)):
        if not 0 <= value <= 1:
            raise QAConvError(f"{name} must be in [0, 1], got {value}")


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise QAConvError(f"output path {out} exists and is not a folder")
    existing = [out / d for d in (*SPLIT_DIRS, "meta.json") if (out / d).exists()]
    if existing and not overwrite:
        raise QAConvError(
            f"{out} already holds a data set ({existing[0].name}); pass overwrite=True "
            "(--overwrite) to replace it, or choose another folder"
        )
    for path in existing:  # only what this generator writes; anything else in out is left alone
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    for d in SPLIT_DIRS:
        (out / d).mkdir(parents=True, exist_ok=True)


def default_workers() -> int:
    """Processes to render with: the CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def generate(
    out_dir: str | os.PathLike,
    num_ids: int = 100,
    num_cams: int = 6,
    seed: int = 0,
    style: str = "A",
    images_per_id: int = 10,
    height: int = 128,
    width: int = 64,
    quality: int = 90,
    junk_fraction: float = 0.1,
    distractor_fraction: float = 0.1,
    workers: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a synthetic Market-1501-layout data set to out_dir and return its meta.json content.

    num_ids identities (half train, half test, like Market), seen by num_cams cameras; each
    identity has about images_per_id images (uniform in [0.6, 1.4] x, at least 4) spread over
    2..num_cams cameras, at least 2 per camera. Test identities give one query image per camera
    they appear in; the rest go to the gallery (bounding_box_test), which also gets
    round(gallery x distractor_fraction) distractors (pid 0000) and round(gallery x junk_fraction)
    junk images (pid -1). style 'A' or 'B' picks the domain. Images are height x width JPEGs
    (quality `quality`). workers: processes (None = all CPUs; the output does not depend on it).
    """
    style = str(style).upper()
    _check(num_ids, num_cams, images_per_id, height, width, style, quality, junk_fraction, distractor_fraction)
    out = Path(out_dir)
    plan = _plan(num_ids, num_cams, seed, style, images_per_id, junk_fraction, distractor_fraction)
    _prepare_out_dir(out, overwrite)
    job = _Job(str(out), int(seed), style, int(height), int(width), int(quality), plan["cameras"])

    tasks: dict[Any, list[tuple]] = {}
    for s in plan["shots"]:
        owner = s["pid"] if s["pid"] > 0 else s["key"]
        tasks.setdefault(owner, []).append((s["split"], s["name"], s["cam"], s["key"], s.get("misaligned", False)))
    work = [
        (plan["identities"].get(owner) if isinstance(owner, int) else None, images) for owner, images in tasks.items()
    ]
    workers = default_workers() if workers is None else max(1, int(workers))
    if workers == 1 or len(plan["shots"]) < 200:
        _init_worker(job)
        for task in work:
            _render_task(task)
    else:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(job,)) as pool:
            for _ in pool.imap_unordered(_render_task, work, chunksize=4):
                pass

    meta = _meta(
        plan, seed, style, num_ids, num_cams, images_per_id, height, width, quality, junk_fraction, distractor_fraction
    )
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _meta(
    plan: dict[str, Any],
    seed: int,
    style: str,
    num_ids: int,
    num_cams: int,
    images_per_id: int,
    height: int,
    width: int,
    quality: int,
    junk_fraction: float,
    distractor_fraction: float,
) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {}
    for d in SPLIT_DIRS:
        shots = [s for s in plan["shots"] if s["split"] == d]
        counts[d] = {
            "images": len(shots),
            "ids": len({s["pid"] for s in shots if s["pid"] > 0}),
            "cameras": len({s["cam"] for s in shots}),
        }
    counts["bounding_box_test"]["distractors"] = sum(s["pid"] == 0 for s in plan["shots"])
    counts["bounding_box_test"]["junk"] = sum(s["pid"] == -1 for s in plan["shots"])
    return {
        "generator": "qaconv.data.synthetic",
        "version": GENERATOR_VERSION,
        "layout": "market1501",
        "seed": int(seed),
        "style": style,
        "num_ids": num_ids,
        "num_cams": num_cams,
        "images_per_id": images_per_id,
        "height": height,
        "width": width,
        "jpeg_quality": quality,
        "junk_fraction": junk_fraction,
        "distractor_fraction": distractor_fraction,
        "fps": FPS,
        "counts": counts,
        "train_ids": sorted(plan["train"]),
        "families": [f for f in plan["families"] if len(f) > 1],
    }
