"""The two styles are different domains: B is warmer and more saturated than A, for several seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qaconv.data.synthetic import SynthConfig, generate
from qaconv.data.synthetic.styles import STYLE_TABLE, palette_colour
from tests.data.synthetic.conftest import SMALL


def _channel_stats(root: Path) -> tuple[float, float]:
    """Mean warmth (R - B) and HSV saturation over all training images."""
    warm, sat = [], []
    for path in sorted((root / "bounding_box_train").iterdir()):
        with Image.open(path) as img:
            rgb = np.asarray(img, np.float32)
            hsv = np.asarray(img.convert("HSV"), np.float32)
        warm.append((rgb[..., 0] - rgb[..., 2]).mean())
        sat.append(hsv[..., 1].mean())
    return float(np.mean(warm)), float(np.mean(sat))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_styles_are_different_domains(tmp_path, seed):
    stats = {}
    for style in ("A", "B"):
        generate(tmp_path / style, SynthConfig(seed=seed, style=style, **SMALL), workers=1)
        stats[style] = _channel_stats(tmp_path / style)
    (warm_a, sat_a), (warm_b, sat_b) = stats["A"], stats["B"]
    assert warm_b > warm_a + 15  # B: warm interior light
    assert sat_b > sat_a + 10  # B: stronger colour casts and palette


def test_palette_colour_is_a_tinted_palette_entry_away_from_avoid():
    palette = STYLE_TABLE["A"].clothes
    rng = np.random.default_rng(0)
    for _ in range(50):
        first = np.asarray(palette_colour(rng, palette))
        second = np.asarray(palette_colour(rng, palette, avoid=first))
        for colour in (first, second):
            assert np.abs(palette - colour).max(axis=1).min() < 0.1  # near one entry
            assert colour.min() >= 0 and colour.max() <= 1
        assert np.abs(second - first).max() > 0.1
