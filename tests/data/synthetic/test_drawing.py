"""Drawing one person: where the person is painted, and what shows from which side."""

from __future__ import annotations

import numpy as np

from qaconv.data.synthetic.drawing import draw_person
from qaconv.data.synthetic.identities import sample_identity

H, W = 128, 64


def _person(**attributes) -> dict:
    p = sample_identity(np.random.default_rng(0), "A")
    return {**p, **attributes}


def _draw(p: dict, view: str, top: float = 8.0, height: float = 112.0) -> tuple[np.ndarray, np.ndarray]:
    img = np.full((H, W, 3), 0.5, np.float32)
    v = ((np.arange(H, dtype=np.float32) + 0.5 - top) / height)[:, None]
    u = ((np.arange(W, dtype=np.float32) + 0.5 - W / 2) / height)[None, :]
    mask = draw_person(img, p, u, v, view, 1, 0.3)
    return img, mask


def _has(img: np.ndarray, colour, mask: np.ndarray) -> bool:
    """Whether a pixel of the person is `colour` up to the body shading (a scale of 0.78-1)."""
    c = np.asarray(colour, np.float32)
    pixels = img[mask]
    ratio = pixels / np.maximum(c, 1e-3)
    return bool((np.ptp(ratio, axis=1) < 1e-3).any())


def test_the_person_fills_the_frame_given_by_u_and_v():
    img, mask = _draw(_person(), "front", top=8.0, height=112.0)
    rows, cols = np.nonzero(mask)
    assert rows.min() >= 8 - 1 and rows.max() <= 8 + 112
    assert rows.max() - rows.min() > 0.9 * 112  # head to shoes
    assert abs(cols.mean() - W / 2) < 4  # centred on the body axis
    outside = ~mask & ~np.all(img == np.float32(0.5), axis=-1)
    assert (np.nonzero(outside)[0] >= 8 + 100).all()  # only the ground shadow darkens the scene


def test_the_logo_shows_from_the_front_only():
    red, blue = [0.9, 0.1, 0.1], [0.1, 0.1, 0.9]
    p = _person(pattern="logo", logo="square", upper1=red, upper2=blue, bag="none", long_sleeves=True)
    front, front_mask = _draw(p, "front")
    back, back_mask = _draw(p, "back")
    assert _has(front, blue, front_mask) and not _has(back, blue, back_mask)
    assert _has(front, red, front_mask) and _has(back, red, back_mask)


def test_a_backpack_hides_the_back():
    green = [0.1, 0.8, 0.2]
    p = _person(bag="backpack", bag_colour=green, pattern="plain", upper1=[0.9, 0.9, 0.1], upper2=[0.9, 0.9, 0.1])
    back, back_mask = _draw(p, "back")
    front, front_mask = _draw(p, "front")
    count = {
        name: (np.abs(img[m] - np.asarray(green)).max(axis=1) < 0.25).sum()
        for name, img, m in (("back", back, back_mask), ("front", front, front_mask))
    }
    assert count["back"] > 3 * count["front"] > 0  # the pack from behind, the straps from the front
