"""Cameras: values drawn inside their style's ranges; `photograph` applies gain, cast, blur and noise."""

from __future__ import annotations

import numpy as np
import pytest

from qaconv.data.synthetic.cameras import photograph, sample_camera
from qaconv.data.synthetic.styles import STYLE_TABLE


@pytest.mark.parametrize("style", ["A", "B"])
def test_cameras_are_drawn_from_their_style(style):
    st = STYLE_TABLE[style]
    rng = np.random.default_rng(0)
    for index in range(20):
        cam = sample_camera(rng, style, index)
        assert cam["index"] == index and cam["occluder"] in st.occluders
        for name in ("gain", "gamma", "blur", "lowres", "noise", "scale", "occlusion"):
            low, high = getattr(st, name)
            assert low <= cam[name] <= high, name
        assert abs(np.mean(cam["cast"]) - 1) < 1e-5
        assert abs(sum(cam["views"]) - 1) < 1e-9 and 0 <= cam["position"] <= 400


def test_photograph_keeps_the_size_and_adds_the_camera_effects():
    camera = sample_camera(np.random.default_rng(0), "B", 0)
    scene = np.full((64, 32, 3), 0.5, np.float32)
    image = photograph(scene.copy(), camera, np.random.default_rng(1))
    pixels = np.asarray(image, np.float32)
    assert image.size == (32, 64) and image.mode == "RGB"
    assert pixels.std() > 0.5  # sensor noise
    assert pixels[..., 0].mean() > pixels[..., 2].mean()  # style B's warm cast
    again = photograph(scene.copy(), camera, np.random.default_rng(1))
    assert np.array_equal(np.asarray(again), np.asarray(image))
