"""People: the attributes of one identity, and families of near-twins (the hard negatives).

An identity is a plain dict of floats, lists and strings (cheap to pickle to worker processes);
drawing.py reads it. Attributes come in groups (`MUTABLE`); family members differ in one group.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qaconv.data.synthetic.streams import pick
from qaconv.data.synthetic.styles import (
    HAIR_STYLE_P,
    HAIR_STYLES,
    LOGOS,
    SHOE_COLOURS,
    SKIN,
    STYLE_TABLE,
    Style,
    palette_colour,
)

MUTABLE = ("upper_colour", "upper_pattern", "lower", "bag", "hair", "shoes", "sleeves", "hat")
FAMILY_SIZES, FAMILY_SIZE_P = [1, 2, 3, 4], [0.4, 0.3, 0.2, 0.1]


def sample_attribute(rng: np.random.Generator, st: Style, p: dict[str, Any], name: str) -> None:
    """Draw the attribute group `name` (one of MUTABLE) into identity `p`."""
    clothes = st.clothes
    if name == "upper_colour":
        p["upper1"] = palette_colour(rng, clothes)
        p["upper2"] = palette_colour(rng, clothes, avoid=np.asarray(p["upper1"]))
    elif name == "upper_pattern":
        p["pattern"] = pick(rng, st.pattern_p)
        p["period"] = float(rng.uniform(0.035, 0.065))
        p["logo"] = LOGOS[int(rng.integers(len(LOGOS)))]
    elif name == "lower":
        p["lower"] = palette_colour(rng, clothes)
        p["lower_kind"] = pick(rng, st.lower_p)
        p["tights"] = bool(rng.random() < 0.4)
    elif name == "bag":
        p["bag"] = pick(rng, st.bag_p)
        p["bag_colour"] = palette_colour(rng, clothes)
    elif name == "hair":
        p["hair_style"] = HAIR_STYLES[int(rng.choice(4, p=HAIR_STYLE_P))]
        p["hair"] = (st.hair[int(rng.choice(len(st.hair), p=st.hair_p))] + rng.normal(0, 0.02, 3)).clip(0, 1).tolist()
    elif name == "shoes":
        p["shoes"] = palette_colour(rng, SHOE_COLOURS)
    elif name == "sleeves":
        p["long_sleeves"] = bool(rng.random() < 0.5)
    elif name == "hat":
        p["hat"] = bool(rng.random() < st.hat_p)
        p["hat_colour"] = palette_colour(rng, clothes)


def sample_identity(rng: np.random.Generator, style: str) -> dict[str, Any]:
    """All attributes of one person: body shape and skin, then every group of MUTABLE."""
    st = STYLE_TABLE[style]
    build = float(rng.uniform(0.85, 1.2))  # slim .. heavy
    sh = float(rng.uniform(0.095, 0.125)) * build
    p: dict[str, Any] = {
        "head_r": float(rng.uniform(0.058, 0.07)),
        "torso": float(rng.uniform(0.29, 0.35)),
        "sh": sh,
        "hh": sh * float(rng.uniform(0.8, 0.98)),
        "arm": 0.026 * build,
        "skin": (SKIN[int(rng.choice(len(SKIN), p=st.skin_p))] + rng.normal(0, 0.02, 3)).clip(0, 1).tolist(),
    }
    for name in MUTABLE:
        sample_attribute(rng, st, p, name)
    return p


def family(rng: np.random.Generator, style: str, size: int) -> list[dict[str, Any]]:
    """`size` near-twins: copies of one person that each differ from it in one attribute group."""
    base = sample_identity(rng, style)
    members = [base]
    for _ in range(size - 1):
        twin = dict(base)
        group = MUTABLE[int(rng.integers(len(MUTABLE)))]
        for _ in range(10):  # re-draw until the attribute really changed
            sample_attribute(rng, STYLE_TABLE[style], twin, group)
            if any(twin[k] != base[k] for k in twin):
                break
        members.append(twin)
    return members


def population(rng: np.random.Generator, style: str, num_ids: int) -> tuple[dict[int, dict[str, Any]], list[list[int]]]:
    """num_ids identities by pid (1..num_ids), drawn family by family, and the families as lists of pids."""
    identities: dict[int, dict[str, Any]] = {}
    families: list[list[int]] = []
    while len(identities) < num_ids:
        size = min(int(rng.choice(FAMILY_SIZES, p=FAMILY_SIZE_P)), num_ids - len(identities))
        members = []
        for ident in family(rng, style, size):
            pid = len(identities) + 1
            identities[pid] = ident
            members.append(pid)
        families.append(members)
    return identities, families
