"""The independent random streams: every draw comes from SeedSequence([seed, style code, tag, ...]).

Each stream is keyed only by what it describes (the cameras, the families, one identity's walk,
one image), so a seed gives the same bytes whatever the order or the process that draws them.
"""

from __future__ import annotations

import numpy as np

STYLE_CODE = {"A": 1, "B": 2}
# Stream tags: the second element of a stream's key after the seed and style code.
T_CAMERA, T_FAMILY, T_SPLIT, T_TRACK, T_IMAGE, T_EXTRA = range(6)
# Kinds of the images outside the id set (the key of one is (T_EXTRA, kind, index)).
KIND_DISTRACTOR, KIND_JUNK = 1, 2


def stream(*key: int) -> np.random.Generator:
    """The generator of one stream (keys are ints: seed, style code, tag, ...)."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def pick(rng: np.random.Generator, table: dict[str, float]) -> str:
    """One name of `table`, drawn with the (unnormalised) odds it maps to."""
    names = list(table)
    p = np.asarray([table[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]
