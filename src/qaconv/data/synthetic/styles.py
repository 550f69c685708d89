"""The two styles (domains) as tables: clothing and scene palettes, attribute odds, camera ranges.

'A' is a campus in daylight (Market-like), 'B' a shopping mall in the evening; docs/synthetic.md
compares them. Palettes are float32 RGB rows in [0, 1]; `palette_colour` picks one with a tint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def rgb(*colours: tuple[int, int, int]) -> np.ndarray:
    """A palette: 8-bit RGB triples as float32 rows in [0, 1]."""
    return np.asarray(colours, dtype=np.float32) / 255.0


def palette_colour(rng: np.random.Generator, palette: np.ndarray, avoid: np.ndarray | None = None) -> list:
    """A palette colour with a small fixed tint (so palettes are shared, not identical); not close to `avoid`."""
    for _ in range(20):
        base = palette[int(rng.integers(len(palette)))]
        if avoid is None or np.abs(base - avoid).max() > 0.2:
            break
    return np.clip(base + rng.normal(0, 0.025, 3), 0, 1).astype(np.float32).tolist()


@dataclass(frozen=True)
class Style:
    """One domain: what people wear (palettes and odds) and the ranges its cameras draw from."""

    clothes: np.ndarray  # 16 garment colours
    skin_p: tuple[float, ...]  # odds of the SKIN rows
    hair: np.ndarray
    hair_p: tuple[float, ...]
    pattern_p: dict[str, float]  # upper-garment pattern odds
    lower_p: dict[str, float]
    bag_p: dict[str, float]
    hat_p: float
    background: str  # "campus" or "indoor"
    gain: tuple[float, float]
    cast: float  # +- per channel
    cast_bias: tuple[float, float, float]
    gamma: tuple[float, float]
    blur: tuple[float, float]  # Gaussian sigma at 128 px height
    lowres: tuple[float, float]  # resolution kept before upsampling
    noise: tuple[float, float]  # sensor noise std (of 1)
    scale: tuple[float, float]  # person height / crop height
    scale_jitter: float
    shift: float
    occlusion: tuple[float, float]  # per-camera occlusion rate
    occluders: tuple[str, ...]  # "bottom", "pole", "person"


SKIN = rgb((255, 220, 177), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 60, 40))
SHOE_COLOURS = rgb((20, 20, 20), (235, 235, 235), (110, 70, 40), (60, 60, 70), (180, 40, 40), (40, 80, 160))
OCCLUDER_COLOURS = rgb((90, 90, 95), (150, 150, 150), (120, 80, 50), (40, 60, 90), (170, 40, 40), (60, 100, 60))
HAIR_STYLES = ("short", "long", "ponytail", "bald")
HAIR_STYLE_P = (0.5, 0.28, 0.14, 0.08)
LOGOS = ("circle", "square", "diamond", "triangle")

STYLE_TABLE: dict[str, Style] = {
    # A: "campus in daylight" (Market-like): saturated primaries, facades, pavement, mild cameras.
    "A": Style(
        clothes=rgb(
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
        skin_p=(0.25, 0.25, 0.2, 0.15, 0.1, 0.05),
        hair=rgb((20, 18, 16), (58, 38, 24), (110, 72, 40), (200, 170, 110), (150, 150, 150), (130, 50, 20)),
        hair_p=(0.45, 0.25, 0.12, 0.08, 0.06, 0.04),
        pattern_p={"plain": 0.45, "hstripes": 0.15, "vstripes": 0.07, "checks": 0.1, "logo": 0.18, "twotone": 0.05},
        lower_p={"trousers": 0.65, "shorts": 0.2, "skirt": 0.15},
        bag_p={"none": 0.4, "backpack": 0.3, "shoulder": 0.15, "handbag": 0.15},
        hat_p=0.1,
        background="campus",
        gain=(0.9, 1.12),
        cast=0.06,
        cast_bias=(-0.02, 0.0, 0.03),
        gamma=(0.9, 1.1),
        blur=(0.35, 0.8),
        lowres=(0.8, 1.0),
        noise=(0.004, 0.014),
        scale=(0.82, 0.92),
        scale_jitter=0.03,
        shift=0.04,
        occlusion=(0.05, 0.2),
        occluders=("bottom", "pole", "person"),
    ),
    # B: "shopping mall in the evening": muted/earthy palette, warm interiors, darker, colour-cast,
    # blurrier, lower-resolution cameras that frame people less tightly and occlude them more.
    "B": Style(
        clothes=rgb(
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
        skin_p=(0.1, 0.15, 0.2, 0.2, 0.2, 0.15),
        hair=rgb((20, 18, 16), (58, 38, 24), (110, 72, 40), (200, 170, 110), (150, 150, 150), (120, 40, 120)),
        hair_p=(0.35, 0.25, 0.15, 0.1, 0.05, 0.1),
        pattern_p={"plain": 0.35, "hstripes": 0.1, "vstripes": 0.1, "checks": 0.2, "logo": 0.1, "twotone": 0.15},
        lower_p={"trousers": 0.55, "shorts": 0.15, "skirt": 0.3},
        bag_p={"none": 0.3, "backpack": 0.2, "shoulder": 0.25, "handbag": 0.25},
        hat_p=0.2,
        background="indoor",
        gain=(0.55, 0.85),
        cast=0.12,
        cast_bias=(0.1, 0.0, -0.1),
        gamma=(0.8, 1.2),
        blur=(0.6, 1.3),
        lowres=(0.5, 0.8),
        noise=(0.012, 0.035),
        scale=(0.72, 0.88),
        scale_jitter=0.05,
        shift=0.07,
        occlusion=(0.15, 0.35),
        occluders=("bottom", "person", "pole"),
    ),
}
STYLES = tuple(STYLE_TABLE)

# Scene palettes of the two backgrounds.
CAMPUS_WALLS = rgb((150, 150, 156), (186, 176, 160), (160, 92, 72), (205, 205, 198), (122, 132, 142))
CAMPUS_WINDOWS = rgb((60, 80, 112), (42, 50, 60), (122, 152, 172))
CAMPUS_FLOORS = rgb((142, 142, 142), (166, 160, 150), (112, 112, 118), (152, 132, 112))
CAMPUS_PLANTS = rgb((40, 100, 40), (70, 120, 50), (30, 80, 50))
INDOOR_WALLS = rgb((192, 150, 112), (212, 192, 162), (152, 112, 92), (122, 92, 72), (202, 172, 172), (92, 82, 92))
INDOOR_FLOORS = rgb((92, 82, 72), (142, 122, 102), (62, 62, 72), (172, 162, 152))
INDOOR_SIGNS = rgb((232, 62, 52), (252, 202, 42), (42, 162, 222), (242, 242, 242), (202, 62, 162))
