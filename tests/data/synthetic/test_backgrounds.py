"""Background scenes: larger than a crop, in [0, 1], fixed by the camera's bg_seed, different per camera."""

from __future__ import annotations

import numpy as np
import pytest

from qaconv.data.synthetic.backgrounds import background
from qaconv.data.synthetic.cameras import sample_camera


@pytest.mark.parametrize("style", ["A", "B"])
def test_a_scene_per_camera(style):
    rng = np.random.default_rng(0)
    first, second = (sample_camera(rng, style, i) for i in range(2))
    scene = background(style, first, 64, 32)
    assert scene.shape == (64 + 16, 3 * 32, 3)
    assert scene.min() >= 0 and scene.max() <= 1 and scene.std() > 0.02
    assert np.array_equal(scene, background(style, dict(first), 64, 32))
    assert not np.array_equal(scene, background(style, second, 64, 32))


def test_the_styles_draw_different_places():
    camera = sample_camera(np.random.default_rng(0), "A", 0)
    campus, mall = background("A", camera, 128, 64), background("B", camera, 128, 64)
    # The mall is lit by warm lights: redder than blue on average; the campus is not.
    assert (mall[..., 0] - mall[..., 2]).mean() > (campus[..., 0] - campus[..., 2]).mean() + 0.05
